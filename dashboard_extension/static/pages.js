// What the pages do once their content is in: localise figures, add notes and tags,
// search, build segments with a live count, manage API tokens. Every write goes to the
// GraphQL API with the dashboard's token (bridge.js), then the content is re-rendered.
(() => {
  "use strict";
  const content = document.getElementById("content");
  const CRM = () => window.CRM;

  function localize(scope) {
    const locale = CRM().state.locale;
    scope.querySelectorAll("data.money[value]").forEach((el) => {
      try {
        el.textContent = new Intl.NumberFormat(locale, { style: "currency", currency: el.dataset.currency }).format(Number(el.value));
      } catch (error) { /* unknown currency: keep the server's text */ }
    });
    scope.querySelectorAll("data.num[value]").forEach((el) => {
      const digits = Number(el.dataset.digits || 0);
      el.textContent = new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(Number(el.value));
    });
    scope.querySelectorAll("data.pct[value]").forEach((el) => {
      const digits = Number(el.dataset.digits || 0);
      el.textContent = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: digits }).format(Number(el.value));
    });
    scope.querySelectorAll("time[datetime]").forEach((el) => {
      const options = el.dataset.withTime ? { dateStyle: "medium", timeStyle: "short" } : { dateStyle: "medium" };
      el.textContent = new Intl.DateTimeFormat(locale, options).format(new Date(el.getAttribute("datetime")));
    });
  }

  async function write(action, done) {
    try {
      await action();
      if (done) CRM().notify("success", "Saleor CRM", done);
      await CRM().reload();
    } catch (error) {
      CRM().notify("error", "Saleor CRM", error.message);
      const box = document.createElement("p");
      box.className = "problem inline-problem";
      box.setAttribute("role", "alert");
      box.textContent = error.message;
      content.prepend(box);
    }
  }

  const ADD_NOTE = "mutation($id: ID!, $text: String!) { customerAddNote(customerId: $id, text: $text) { id } }";
  const TAG = "mutation($id: ID!, $tags: [String!]!) { customerTag(customerId: $id, tags: $tags) { id } }";
  const UNTAG = "mutation($id: ID!, $tags: [String!]!) { customerUntag(customerId: $id, tags: $tags) { id } }";
  const TOKEN_CREATE = "mutation($input: ApiTokenCreateInput!) { apiTokenCreate(input: $input) { token apiToken { id } } }";
  const TOKEN_REVOKE = "mutation($id: ID!) { apiTokenRevoke(id: $id) { id } }";
  const SEGMENT_CREATE = "mutation($input: SegmentCreateInput!) { segmentCreate(input: $input) { slug } }";
  const SEGMENT_UPDATE = "mutation($slug: String!, $input: SegmentUpdateInput!) { segmentUpdate(slug: $slug, input: $input) { slug } }";

  content.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const action = form.dataset.action;
    if (form.hasAttribute("data-fragment-form")) {
      event.preventDefault();
      const url = new URL(location.href);
      for (const [key, value] of new FormData(form)) {
        if (value) url.searchParams.set(key, String(value)); else url.searchParams.delete(key);
      }
      url.searchParams.delete("after");
      history.replaceState(null, "", url.pathname + url.search);
      CRM().reload();
      return;
    }
    if (!action) return;
    event.preventDefault();
    const data = new FormData(form);
    const id = form.dataset.customerId;
    if (action === "note") {
      write(() => CRM().api(ADD_NOTE, { id, text: String(data.get("text")) }), "Note added");
    } else if (action === "tag") {
      write(() => CRM().api(TAG, { id, tags: [String(data.get("tag")).trim()] }), "Tag added");
    } else if (action === "token-create") {
      write(async () => {
        const answer = await CRM().api(TOKEN_CREATE, {
          input: { name: String(data.get("name")), permissions: data.getAll("permissions").map(String) },
        });
        content.addEventListener("crm:rendered", () => {
          const box = content.querySelector("[data-secret]");
          if (box) { box.hidden = false; box.querySelector("[data-secret-value]").textContent = answer.apiTokenCreate.token; }
        }, { once: true });
      }, "Token created");
    }
  });

  content.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button") : null;
    if (!button) return;
    if (button.dataset.untag) {
      const card = button.closest("[data-customer]");
      write(() => CRM().api(UNTAG, { id: card.dataset.customer, tags: [button.dataset.untag] }), "Tag removed");
    } else if (button.dataset.revoke) {
      // The dashboard's sandbox has no `allow-modals`: confirm in place with a second click.
      if (!button.dataset.armed) {
        button.dataset.armed = "1";
        button.textContent = `Revoke “${button.dataset.name}” now`;
        button.title = "Programs using it stop working at once.";
        return;
      }
      write(() => CRM().api(TOKEN_REVOKE, { id: button.dataset.revoke }), "Token revoked");
    }
  });

  // -- the segment builder -----------------------------------------------------------------
  const OPERATOR_WORDS = {
    eq: "is", ne: "is not", gt: "more than", gte: "at least", lt: "less than", lte: "at most",
    between: "between", in: "is one of", not_in: "is none of", contains: "contains",
    starts_with: "starts with", is_set: "is known", is_not_set: "is unknown", before: "before",
    after: "after", is_true: "yes", is_false: "no", has: "has", has_any: "has any of",
    has_none: "has none of",
  };
  function builder(form) {
    const fields = JSON.parse(form.dataset.fields);
    const byName = Object.fromEntries(fields.map((f) => [f.name, f]));
    const noValue = new Set(form.dataset.noValue.split(","));
    const listValue = new Set(form.dataset.listValue.split(","));
    const list = form.querySelector("[data-conditions]");
    const rulesBox = form.querySelector("[data-rules]");
    const preview = form.querySelector("[data-preview]");
    let timer = null;
    let generation = 0;

    function option(value, label, selected) {
      const el = document.createElement("option");
      el.value = value; el.textContent = label; el.selected = Boolean(selected);
      return el;
    }

    function row(condition) {
      const li = document.createElement("li");
      li.className = "condition";
      const field = document.createElement("select");
      field.name = "field"; field.setAttribute("aria-label", "Field");
      fields.forEach((f) => field.append(option(f.name, f.label, f.name === condition.field)));
      const op = document.createElement("select");
      op.name = "op"; op.setAttribute("aria-label", "Operator");
      const value = document.createElement("input");
      value.name = "value"; value.setAttribute("aria-label", "Value");
      const remove = document.createElement("button");
      remove.type = "button"; remove.textContent = "×"; remove.setAttribute("aria-label", "Remove condition");
      function fillOps(selected) {
        op.replaceChildren(...byName[field.value].operators.map((o) => option(o, OPERATOR_WORDS[o] || o.replaceAll("_", " "), o === selected)));
        value.hidden = noValue.has(op.value);
      }
      fillOps(condition.op);
      const shown = condition.value;
      value.value = shown === undefined ? "" : (typeof shown === "object" ? JSON.stringify(shown) : String(shown));
      field.addEventListener("change", () => { fillOps(); fromRows(); });
      op.addEventListener("change", () => { value.hidden = noValue.has(op.value); fromRows(); });
      value.addEventListener("input", fromRows);
      remove.addEventListener("click", () => { li.remove(); fromRows(); });
      li.append(field, op, value, remove);
      return li;
    }

    function parseValue(kind, op, text) {
      const raw = text.trim();
      if (listValue.has(op)) {
        try { const parsed = JSON.parse(raw); if (Array.isArray(parsed)) return parsed; } catch (error) { /* a list in words */ }
        return raw.split(",").map((part) => part.trim()).filter(Boolean).map((part) => (["number", "money", "days"].includes(kind) ? Number(part) : part));
      }
      if (["number", "money", "days"].includes(kind)) return raw === "" ? null : Number(raw);
      if (raw.startsWith("{")) { try { return JSON.parse(raw); } catch (error) { return raw; } }
      return raw;
    }

    function fromRows() {
      const conditions = Array.from(list.children).map((li) => {
        const field = li.querySelector("[name=field]").value;
        const op = li.querySelector("[name=op]").value;
        const condition = { field, op };
        if (!noValue.has(op)) condition.value = parseValue(byName[field].kind, op, li.querySelector("[name=value]").value);
        return condition;
      });
      const combine = form.querySelector("[name=combine]").value;
      rulesBox.value = JSON.stringify({ [combine]: conditions }, null, 2);
      schedule();
    }

    // Rows for a rule the simple editor can show (all/any of field conditions); other
    // rules stay in the JSON box, which is always the truth.
    function toRows(rule) {
      const combine = rule && (rule.all ? "all" : rule.any ? "any" : null);
      const parts = combine ? rule[combine] : null;
      if (!parts || !parts.every((p) => p && p.field && byName[p.field])) return false;
      form.querySelector("[name=combine]").value = combine;
      list.replaceChildren(...parts.map(row));
      return true;
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 350);
    }

    async function refresh() {
      const mine = ++generation;
      preview.setAttribute("aria-busy", "true");
      const answer = await CRM().fragment("segment_preview", { rules: rulesBox.value });
      if (mine !== generation) return;
      preview.innerHTML = answer.html;
      preview.setAttribute("aria-busy", "false");
      localize(preview);
    }

    let parsed = null;
    try { parsed = JSON.parse(rulesBox.value); } catch (error) { parsed = null; }
    if (!toRows(parsed)) list.closest("fieldset").classList.add("advanced");
    form.querySelector("[data-add-condition]").addEventListener("click", () => {
      list.append(row({ field: fields[0].name, op: fields[0].operators[0] }));
      fromRows();
    });
    form.querySelector("[name=combine]").addEventListener("change", fromRows);
    rulesBox.addEventListener("input", () => { let rule = null; try { rule = JSON.parse(rulesBox.value); } catch (error) { /* shown by the preview */ } toRows(rule); schedule(); });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      event.stopPropagation();
      let rules;
      try { rules = JSON.parse(rulesBox.value); } catch (error) { CRM().notify("error", "Saleor CRM", "The rule is not valid JSON."); return; }
      const data = new FormData(form);
      const slug = String(data.get("slug"));
      const details = { name: String(data.get("name")), description: String(data.get("description") || ""), rules };
      const save = form.dataset.mode === "edit"
        ? CRM().api(SEGMENT_UPDATE, { slug, input: details })
        : CRM().api(SEGMENT_CREATE, { input: Object.assign({ slug }, details) });
      save.then(() => {
        CRM().notify("success", "Saleor CRM", `Segment “${details.name}” saved`);
        const url = new URL(form.dataset.membersUrl, location.href);
        url.searchParams.set("segment", slug);
        location.assign(CRM().withContext(url.pathname + url.search));
      }).catch((error) => {
        CRM().notify("error", "Saleor CRM", error.message);
        preview.innerHTML = "";
        const box = document.createElement("p");
        box.className = "problem inline-problem"; box.setAttribute("role", "alert"); box.textContent = error.message;
        preview.append(box);
      });
    }, true);
    refresh();
  }

  content.addEventListener("crm:rendered", () => {
    localize(content);
    const form = content.querySelector("[data-segment-builder]");
    if (form) builder(form);
  });
  content.addEventListener("crm:locale", () => localize(content));
  window.CRMPages = { write, localize };
})();
