// The mailing and operations pages: switch flows on and off, edit flows and templates
// (with the template's live preview), send a test, correct a parcel's carrier and set a
// manual parcel's status, start an import and follow it live. Every write goes to the
// GraphQL API with the dashboard's token (bridge.js), then the content is re-rendered; an
// error is shown where it happened.
(() => {
  "use strict";
  const content = document.getElementById("content");
  const CRM = () => window.CRM;
  const write = (action, done) => window.CRMPages.write(action, done);

  const FLOW_CREATE = "mutation($input: MessageFlowInput!) { messageFlowCreate(input: $input) { key } }";
  const FLOW_UPDATE = "mutation($key: String!, $input: MessageFlowUpdateInput!) { messageFlowUpdate(key: $key, input: $input) { key enabled } }";
  const FLOW_DELETE = "mutation($key: String!) { messageFlowDelete(key: $key) { key } }";
  const TEMPLATE_CREATE = "mutation($input: MessageTemplateInput!) { messageTemplateCreate(input: $input) { key } }";
  const TEMPLATE_UPDATE = "mutation($key: String!, $input: MessageTemplateUpdateInput!) { messageTemplateUpdate(key: $key, input: $input) { key } }";
  const TEMPLATE_DELETE = "mutation($key: String!) { messageTemplateDelete(key: $key) { key } }";
  const TEST_SEND = "mutation($key: String!, $to: String!, $customerId: ID) { messageTemplateTestSend(key: $key, to: $to, customerId: $customerId) }";
  const SHIPMENT_STATUS = "mutation($id: ID!, $status: ShipmentStatus!, $text: String) { shipmentStatusSet(id: $id, status: $status, text: $text) { id status } }";
  const SHIPMENT_CARRIER = "mutation($id: ID!, $carrier: Carrier!) { shipmentCarrierSet(id: $id, carrier: $carrier) { id carrier } }";
  const IMPORT_START = "mutation { importStart { id status } }";
  const POLL_MS = 1500;

  function showProblem(box, message) {
    box.replaceChildren();
    const p = document.createElement("p");
    p.className = "problem inline-problem";
    p.setAttribute("role", "alert");
    p.textContent = message;
    box.append(p);
  }

  // A delete waits for a second click: the dashboard's sandbox has no `allow-modals`.
  function armed(button, words) {
    if (button.dataset.armed) return true;
    button.dataset.armed = "1";
    button.textContent = words;
    return false;
  }

  content.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button") : null;
    if (!button) return;
    if (button.dataset.flowToggle) {
      const on = button.dataset.enabled !== "true";
      write(() => CRM().api(FLOW_UPDATE, { key: button.dataset.flowToggle, input: { enabled: on } }),
        on ? "Flow switched on" : "Flow paused");
    } else if (button.dataset.flowDelete) {
      if (!armed(button, `Delete “${button.dataset.name}” now`)) return;
      write(() => CRM().api(FLOW_DELETE, { key: button.dataset.flowDelete }), "Flow deleted");
    } else if (button.dataset.templateDelete) {
      if (!armed(button, `Delete “${button.dataset.name}” now`)) return;
      write(() => CRM().api(TEMPLATE_DELETE, { key: button.dataset.templateDelete }), "Template deleted");
    } else if (button.hasAttribute("data-import-start")) {
      button.disabled = true;
      write(() => CRM().api(IMPORT_START), "Import started");
    }
  });

  content.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const data = new FormData(form);
    if (form.dataset.action === "shipment-status") {
      event.preventDefault();
      const text = String(data.get("text") || "").trim();
      write(() => CRM().api(SHIPMENT_STATUS, { id: form.dataset.id, status: String(data.get("status")), text: text || null }),
        "Parcel status set");
    } else if (form.dataset.action === "shipment-carrier") {
      event.preventDefault();
      write(() => CRM().api(SHIPMENT_CARRIER, { id: form.dataset.id, carrier: String(data.get("carrier")) }),
        "Carrier changed");
    } else if (form.dataset.action === "template-test-send") {
      event.preventDefault();
      const customer = content.querySelector("[data-preview-customer]");
      const to = String(data.get("to"));
      CRM().api(TEST_SEND, { key: form.dataset.key, to, customerId: (customer && customer.value) || null })
        .then(() => {
          CRM().notify("success", "Saleor CRM", `Test sent to ${to}`);
          const done = document.createElement("p");
          done.className = "good"; done.setAttribute("data-test-sent", ""); done.textContent = `Test sent to ${to}.`;
          form.after(done);
        })
        .catch((error) => {
          CRM().notify("error", "Saleor CRM", error.message);
          const box = document.createElement("div");
          form.after(box);
          showProblem(box, error.message);
        });
    }
  });

  // -- the flow editor ----------------------------------------------------------------------
  function flowEditor(form) {
    const problem = form.querySelector("[data-form-problem]");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const parsed = {};
      for (const name of ["trigger", "steps", "exits"]) {
        try {
          parsed[name] = JSON.parse(String(data.get(name) || (name === "exits" ? "{}" : "")));
        } catch (error) {
          showProblem(problem, `${name[0].toUpperCase() + name.slice(1)} is not valid JSON: ${error.message}`);
          return;
        }
      }
      const details = {
        name: String(data.get("name")),
        enabled: data.get("enabled") === "on",
        marketing: data.get("marketing") === "on",
        topic: String(data.get("topic") || "offers"),
        reentry: String(data.get("reentry")),
        reentryDays: Number(data.get("reentryDays") || 0),
        holdoutPercent: Number(data.get("holdoutPercent") || 0),
        trigger: parsed.trigger,
        steps: parsed.steps,
        exits: parsed.exits,
      };
      const key = String(data.get("key"));
      const save = form.dataset.mode === "edit"
        ? CRM().api(FLOW_UPDATE, { key, input: details })
        : CRM().api(FLOW_CREATE, { input: Object.assign({ key }, details) });
      save.then(() => {
        CRM().notify("success", "Saleor CRM", `Flow “${details.name}” saved`);
        location.assign(CRM().withContext(form.dataset.listUrl));
      }).catch((error) => {
        CRM().notify("error", "Saleor CRM", error.message);
        showProblem(problem, error.message);
      });
    });
  }

  // -- the template editor and its live preview --------------------------------------------
  function templateEditor(form) {
    const box = form.querySelector("[data-contents]");
    const problem = form.querySelector("[data-form-problem]");
    const parts = Array.from(form.querySelectorAll("[data-part]"));
    const preview = content.querySelector("[data-template-preview]");
    const post = content.querySelector("[data-preview-post]");
    const customer = content.querySelector("[data-preview-customer]");
    const language = content.querySelector("[data-preview-language]");
    let timer = null;
    let generation = 0;

    function contents() {
      try { return JSON.parse(box.value); } catch (error) { return null; }
    }

    // The fields edit the default language; the JSON box holds every language.
    function fromFields() {
      const all = contents() || {};
      const fallback = Object.assign({}, all[""] || {});
      for (const field of parts) {
        if (field.value) fallback[field.dataset.part] = field.value; else delete fallback[field.dataset.part];
      }
      all[""] = fallback;
      box.value = JSON.stringify(all, null, 2);
      schedule();
    }

    function toFields() {
      const all = contents();
      if (all && typeof all === "object") {
        const fallback = all[""] || {};
        for (const field of parts) field.value = fallback[field.dataset.part] || "";
      }
      schedule();
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 350);
    }

    async function refresh() {
      const mine = ++generation;
      const extra = { contents: box.value, customerId: customer.value, language: language.value.trim() };
      preview.setAttribute("aria-busy", "true");
      const answer = await CRM().fragment("template_preview", extra);
      if (mine !== generation) return;
      preview.innerHTML = answer.html;
      preview.setAttribute("aria-busy", "false");
      // The HTML goes to the sandboxed frame as a form post: the token stays out of URLs.
      post.elements.token.value = CRM().state.token;
      post.elements.saleorApiUrl.value = CRM().state.saleorApiUrl;
      post.elements.contents.value = box.value;
      post.elements.customerId.value = customer.value;
      post.elements.language.value = language.value.trim();
      post.submit();
      content.dispatchEvent(new CustomEvent("crm:previewed", { bubbles: true }));
    }

    parts.forEach((field) => field.addEventListener("input", fromFields));
    box.addEventListener("input", toFields);
    customer.addEventListener("change", schedule);
    language.addEventListener("input", schedule);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const all = contents();
      if (!all) { showProblem(problem, "The contents are not valid JSON."); return; }
      const data = new FormData(form);
      const key = String(data.get("key"));
      const name = String(data.get("name"));
      const save = form.dataset.mode === "edit"
        ? CRM().api(TEMPLATE_UPDATE, { key, input: { name, contents: all } })
        : CRM().api(TEMPLATE_CREATE, { input: { key, name, channel: String(data.get("channel")), contents: all } });
      save.then(() => {
        CRM().notify("success", "Saleor CRM", `Template “${name}” saved`);
        location.assign(CRM().withContext(form.dataset.listUrl));
      }).catch((error) => {
        CRM().notify("error", "Saleor CRM", error.message);
        showProblem(problem, error.message);
      });
    });
    refresh();
  }

  // -- pages that follow work going on: a running import, segments being computed ---------
  let poll = null;
  function follow() {
    clearTimeout(poll);
    const page = content.querySelector("[data-live=true]");
    if (page) poll = setTimeout(() => CRM().reload(), Number(page.dataset.liveMs) || POLL_MS);
  }

  content.addEventListener("crm:rendered", () => {
    const flow = content.querySelector("[data-flow-editor]");
    if (flow) flowEditor(flow);
    const template = content.querySelector("[data-template-editor]");
    if (template) templateEditor(template);
    follow();
  });
})();
