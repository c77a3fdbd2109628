// The room page: one WebSocket to /ws/chat/<room>/ (protocol: chat/consumers.py).
//
// The server first sends the room's history, which replaces the log (so a
// reconnection shows no message twice), then each new message and who joins and
// leaves. After the socket closes, the page reconnects with a growing delay, unless
// the user sent /quit.
"use strict";

(() => {
  const QUIT_CODE = 4000;
  const room = JSON.parse(document.getElementById("room-json").textContent);
  const log = document.getElementById("chat-log");
  const status = document.getElementById("status");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-message-input");
  const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  const url = `${scheme}${window.location.host}/ws/chat/${encodeURIComponent(room)}/`;
  const shown = new Set();
  let socket = null;
  let failures = 0;

  function span(className, text) {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  function append(item) {
    const atBottom = window.innerHeight + window.scrollY >= document.body.offsetHeight - 4;
    log.append(item);
    if (atBottom) item.scrollIntoView({ block: "end" });
  }

  function showMessage(message) {
    if (shown.has(message.id)) return;
    shown.add(message.id);
    const item = document.createElement("li");
    item.className = "message";
    item.dataset.id = String(message.id);
    const time = document.createElement("time");
    time.dateTime = message.created;
    time.textContent = new Date(message.created).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
    });
    item.append(time, " ", span("user", message.user ?? "(no author)"), " ");
    item.append(span("text", message.message));
    append(item);
  }

  function showNotice(text, className = "notice") {
    const item = document.createElement("li");
    item.className = className;
    item.textContent = text;
    append(item);
  }

  function receive(event) {
    const data = JSON.parse(event.data);
    switch (data.type) {
      case "history":
        log.replaceChildren();
        shown.clear();
        data.messages.forEach(showMessage);
        failures = 0;
        status.textContent = "connected";
        break;
      case "message":
        showMessage(data);
        break;
      case "join":
        showNotice(`${data.user} joined`);
        break;
      case "leave":
        showNotice(`${data.user} left`);
        break;
      case "error":
        showNotice(`Not sent: ${data.error}`, "error");
        break;
      default:
        console.warn("unknown frame", data);
    }
  }

  function connect() {
    status.textContent = "connecting";
    socket = new WebSocket(url);
    socket.addEventListener("message", receive);
    socket.addEventListener("close", (event) => {
      socket = null;
      if (event.code === QUIT_CODE) {
        status.textContent = "closed";
        return;
      }
      // A refused handshake (logged out meanwhile) closes with 1006 as well: the
      // delay keeps retrying from hammering the server.
      const delay = Math.min(500 * 2 ** failures, 10_000);
      failures += 1;
      status.textContent = `disconnected (${event.code}), retrying in ${delay / 1000} s`;
      window.setTimeout(connect, delay);
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      showNotice("Not sent: not connected", "error");
      return;
    }
    socket.send(JSON.stringify({ message: text }));
    input.value = "";
  });

  connect();
})();
