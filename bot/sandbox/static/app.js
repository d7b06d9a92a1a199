// The sandbox's web chat: one persona's chat at a time, kept current by Server-Sent Events.
// Bot texts arrive already reduced to Telegram's tags (bot/sandbox/chats.py); everything the
// persona typed is shown with textContent, never as HTML.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const T = config.texts;
const $ = (id) => document.getElementById(id);
const messages = $("messages");
let current = null;   // the persona whose chat is shown
let source = null;    // its EventSource
let queue = Promise.resolve();  // what the persona does is sent one at a time, in order

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function api(path, body) {
  const url = `/api/chats/${current.key}/${path}`;
  queue = queue.then(() => fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  })).then((answer) => {
    if (!answer.ok) throw new Error(String(answer.status));
    status("");
  }).catch(() => status(T.not_sent));
  return queue;
}

function status(text) {
  $("status").textContent = text;
  $("status").hidden = !text;
}

function renderMessage(message) {
  const node = el("div", `msg ${message.from}`);
  node.dataset.id = message.id;
  if (message.document) {
    const link = el("a", "doc", `📄 ${message.document.name}`);
    link.href = message.document.url;
    link.download = message.document.name;
    link.title = T.download;
    node.append(link);
  }
  const bubble = el("div", "bubble");
  if (message.html !== undefined) {
    bubble.innerHTML = message.html;  // sanitized by the server: Telegram's tags only
  } else {
    bubble.textContent = message.text;
  }
  if (bubble.innerHTML) node.append(bubble);
  if (message.buttons && message.buttons.length) {
    const inline = el("div", "inline");
    for (const row of message.buttons) {
      const line = el("div", "row");
      for (const button of row) {
        const press = el("button", "", button.text);
        press.type = "button";
        press.addEventListener("click", () =>
          api("press", { message_id: message.id, data: button.data }));
        line.append(press);
      }
      inline.append(line);
    }
    node.append(inline);
  }
  return node;
}

function renderKeyboard(rows) {
  const keyboard = $("keyboard");
  keyboard.replaceChildren();
  keyboard.hidden = !rows;
  for (const row of rows || []) {
    const line = el("div", "row");
    for (const button of row) {
      const key = el("button", "", button.text);
      key.type = "button";
      key.dataset.request = button.request || "";
      key.addEventListener("click", () => {
        if (button.request === "contact") api("contact");
        else if (button.request === "location") api("location");
        else send(button.text);
      });
      line.append(key);
    }
    keyboard.append(line);
  }
}

// Draws a snapshot of the chat: new messages appended, changed ones (edited, buttons taken
// away) replaced where they are, so the list never jumps.
function render(chat) {
  const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
  const seen = new Set();
  let added = false;
  for (const message of chat.messages) {
    const key = String(message.id);
    const signature = JSON.stringify(message);
    seen.add(key);
    const old = messages.querySelector(`[data-id="${CSS.escape(key)}"]`);
    if (old && old.dataset.signature === signature) continue;
    const node = renderMessage(message);
    node.dataset.signature = signature;
    if (old) old.replaceWith(node);
    else { messages.append(node); added = true; }
  }
  for (const node of [...messages.children]) {
    if (!seen.has(node.dataset.id)) node.remove();
  }
  renderKeyboard(chat.keyboard);
  $("start").hidden = chat.messages.length > 0 || !chat.ready;
  status(chat.ready ? "" : T.connecting);
  if (added || atBottom) messages.scrollTop = messages.scrollHeight;
}

function open(persona) {
  if (source) source.close();
  current = persona;
  document.body.classList.toggle("zalo", persona.channel === "zalo");
  for (const button of $("people").children) {
    button.setAttribute("aria-pressed", String(button.dataset.key === persona.key));
  }
  $("chat-about").textContent = `${persona.name} · ${persona.channel === "zalo" ? "Zalo" : "Telegram"}`
    + (persona.channel === "zalo" ? ` · ${T.zalo_note}` : "");
  $("tools").hidden = persona.role !== "admin";
  messages.replaceChildren();
  renderKeyboard(null);
  status(T.connecting);
  history.replaceState(null, "", `#${persona.key}`);
  source = new EventSource(`/api/chats/${persona.key}/events`);
  source.addEventListener("chat", (event) => render(JSON.parse(event.data)));
  source.addEventListener("reset", () => messages.replaceChildren());
  source.onerror = () => status(T.connecting);
}

function send(text) {
  return api("text", { text });
}

function setUp() {
  for (const persona of config.personas) {
    const button = el("button", "person");
    button.type = "button";
    button.dataset.key = persona.key;
    button.append(el("strong", "", persona.name + (persona.channel === "zalo" ? " (Zalo)" : "")));
    button.append(el("small", "", persona.about));
    button.title = persona.about;
    button.addEventListener("click", () => open(persona));
    $("people").append(button);
  }
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    $("text").value = "";
    send(text);
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("start").addEventListener("click", () => send(current.channel === "zalo" ? "menu" : "/start"));
  $("sample").addEventListener("click", () => api("sample"));
  $("reset").addEventListener("click", () => {
    if (!window.confirm(T.reset_confirm)) return;
    status(T.resetting);
    fetch("/api/reset", { method: "POST" }).then(() => open(current));
  });
  const wanted = config.personas.find((p) => `#${p.key}` === location.hash);
  open(wanted || config.personas[0]);
}

setUp();
