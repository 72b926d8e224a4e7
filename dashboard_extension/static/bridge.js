// AppBridge for plain pages (PLATFORM.md §5): the dashboard frames us, we post
// `notifyReady`, it answers with `handshake {token}`; the token lives in memory only and
// goes to the app in app-sdk's headers, never in a URL. Theme, locale, token refresh and
// redirects follow the dashboard's messages; notifications, redirects and widget heights
// are actions we post, each with an `actionId` the dashboard answers with `response`.
(() => {
  "use strict";
  const body = document.body;
  const root = document.documentElement;
  const content = document.getElementById("content");
  const params = new URLSearchParams(location.search);
  const allowed = JSON.parse(body.dataset.dashboardOrigins || "[]");
  const state = {
    token: null,
    saleorApiUrl: params.get("saleorApiUrl") || "",
    theme: root.dataset.theme || "light",
    locale: params.get("locale") || navigator.language || "en",
    saleorVersion: null,
    dashboardVersion: null,
    loaded: false,
  };
  const pending = new Map();

  function actionId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // The dashboard's origin: the referrer's when it is one we allow (as app-sdk does).
  function dashboardOrigin() {
    try {
      const origin = new URL(document.referrer).origin;
      if (allowed.includes(origin)) return origin;
    } catch (error) { /* no referrer */ }
    return allowed.length === 1 ? allowed[0] : "*";
  }

  // Post an action to the dashboard; resolves with its `response` (or after 10 s, unanswered).
  function dispatch(type, payload) {
    const id = actionId();
    const message = { type, payload: Object.assign({}, payload || {}, { actionId: id }) };
    return new Promise((resolve) => {
      const timer = setTimeout(() => { pending.delete(id); resolve({ ok: false, timedOut: true }); }, 10000);
      pending.set(id, (answer) => { clearTimeout(timer); resolve(answer); });
      if (window.parent !== window) window.parent.postMessage(message, dashboardOrigin());
    });
  }

  function notify(status, title, text) {
    return dispatch("notification", { status, title, text });
  }

  function setTheme(theme) {
    state.theme = theme === "dark" ? "dark" : "light";
    root.dataset.theme = state.theme;
    root.style.colorScheme = state.theme;
  }

  function setLocale(locale) {
    if (typeof locale !== "string" || !locale) return;
    state.locale = locale;
    root.lang = locale;
    content.dispatchEvent(new CustomEvent("crm:locale", { bubbles: true }));
  }

  function headers() {
    return {
      "content-type": "application/json",
      "authorization-bearer": state.token,
      "saleor-api-url": state.saleorApiUrl,
    };
  }

  // The GraphQL API, as the dashboard's staff user.
  async function api(query, variables) {
    const response = await fetch("/graphql", {
      method: "POST", headers: headers(), body: JSON.stringify({ query, variables: variables || {} }),
    });
    const answer = await response.json().catch(() => ({ errors: [{ message: `HTTP ${response.status}` }] }));
    if (answer.errors && answer.errors.length) {
      // A missing permission says so plainly; a bad input names the field it is about.
      const words = answer.errors.map((e) => {
        const ext = e.extensions || {};
        if (ext.code === "FORBIDDEN") return `You do not have the permission to do this. ${e.message} Ask a shop administrator.`;
        if (ext.code === "UNAUTHENTICATED") return `The dashboard's token was not accepted. ${e.message}`;
        const where = ext.path || ext.field;
        return where ? `${where}: ${e.message}` : e.message;
      });
      const error = new Error(words.join(" "));
      error.answer = answer;
      throw error;
    }
    return answer.data;
  }

  // Server-rendered HTML of a view, with the page's parameters (and `extra` ones).
  async function fragment(name, extra) {
    const merged = Object.fromEntries(new URLSearchParams(location.search));
    Object.assign(merged, extra || {});
    const response = await fetch(`/dashboard/fragments/${encodeURIComponent(name)}`, {
      method: "POST", headers: headers(), body: JSON.stringify({ params: merged }),
    });
    return { ok: response.ok, status: response.status, html: await response.text() };
  }

  let lastHeight = 0;
  function reportHeight() {
    if (body.dataset.kind !== "widget") return;
    const height = Math.ceil(body.scrollHeight);  // the content, not the frame it fills
    if (height > 0 && Math.abs(height - lastHeight) > 1) {
      lastHeight = height;
      dispatch("widgetResize", { height });
    }
  }

  async function reload() {
    if (!state.token) return;
    content.setAttribute("aria-busy", "true");
    try {
      const answer = await fragment(body.dataset.fragment);
      content.innerHTML = answer.html;
      content.dataset.status = String(answer.status);
      if (!answer.ok && answer.status === 401) notify("error", "Saleor CRM", "The dashboard's token was not accepted.");
    } catch (error) {
      content.innerHTML = '<div class="problem" role="alert"><h2>The CRM cannot be reached</h2><p>Check the connection and reload.</p></div>';
      content.dataset.status = "0";
    }
    content.setAttribute("aria-busy", "false");
    state.loaded = true;
    content.dispatchEvent(new CustomEvent("crm:rendered", { bubbles: true }));
    reportHeight();
  }

  function setToken(token) {
    if (typeof token !== "string" || !token) return;
    const first = !state.token;
    state.token = token;
    if (first) reload();
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent || !allowed.includes(event.origin)) return;
    const message = event.data;
    if (!message || typeof message.type !== "string") return;
    const payload = message.payload || {};
    switch (message.type) {
      case "handshake":
        state.saleorVersion = payload.saleorVersion || null;
        state.dashboardVersion = payload.dashboardVersion || null;
        setToken(payload.token);
        break;
      case "tokenRefresh":
        setToken(payload.token);
        break;
      case "theme":
        setTheme(payload.theme);
        break;
      case "localeChanged":
        setLocale(payload.locale);
        break;
      case "redirect":
        if (typeof payload.path === "string" && payload.path.startsWith("/dashboard/")) {
          location.assign(withContext(payload.path));
        }
        break;
      case "response": {
        const resolve = pending.get(payload.actionId);
        if (resolve) { pending.delete(payload.actionId); resolve(payload); }
        break;
      }
      default:
        break;
    }
  });

  // Links between the app's pages keep the dashboard's context, with the current theme.
  function withContext(href) {
    const url = new URL(href, location.href);
    for (const key of ["saleorApiUrl", "domain", "id"]) {
      if (params.get(key) && !url.searchParams.get(key)) url.searchParams.set(key, params.get(key));
    }
    url.searchParams.set("theme", state.theme);
    url.searchParams.set("locale", state.locale);
    return url.pathname + url.search;
  }

  document.addEventListener("click", (event) => {
    if (event.target instanceof Element && event.target.closest("[data-popup-close]")) {
      dispatch("popupClose", {});
      return;
    }
    const target = event.target instanceof Element ? event.target.closest("a") : null;
    if (!target) return;
    const path = target.dataset.dashboardPath;
    if (path) {
      event.preventDefault();
      dispatch("redirect", { to: path });
      return;
    }
    const href = target.getAttribute("href") || "";
    if (href.startsWith("/dashboard/")) {
      event.preventDefault();
      location.assign(withContext(href));
    }
  });

  if (typeof ResizeObserver === "function" && body.dataset.kind === "widget") {
    new ResizeObserver(reportHeight).observe(body);
  }

  window.CRM = { state, api, fragment, reload, dispatch, notify, withContext };
  setTheme(state.theme);
  root.lang = state.locale;
  if (window.parent !== window && allowed.length) {
    dispatch("notifyReady", {});
  } else if (allowed.length) {
    const status = document.getElementById("status");
    if (status) status.textContent = "Open this page from the Saleor dashboard (Apps → Saleor CRM).";
  }
})();
