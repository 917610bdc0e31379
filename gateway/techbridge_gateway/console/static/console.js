// The dashboard's live feed: the console's relay of the gateway's event stream (the token stays
// in an HttpOnly cookie, so EventSource needs no header and resumes with Last-Event-ID itself).
(function () {
  "use strict";
  var list = document.getElementById("feed");
  if (!list || !window.EventSource) { return; }
  var labels = JSON.parse(list.dataset.labels || "{}");
  var modes = JSON.parse(list.dataset.modes || "{}");
  var state = document.getElementById("feed-state");
  var waiting = document.getElementById("feed-waiting");
  var source = new EventSource(list.dataset.source);

  function money(m) {
    if (!m) { return ""; }
    return (m.currency === "CNY" ? "¥" : m.currency + " ") +
      (m.amount / 100).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function show(verb, message) {
    var ev;
    try { ev = JSON.parse(message.data); } catch (e) { return; }
    var d = ev.data || {};
    var li = document.createElement("li");
    li.className = "feed-item";
    li.dataset.type = ev.type || "";
    var when = document.createElement("time");
    when.textContent = (ev.time || "").replace("T", " ").slice(0, 19);
    var what = document.createElement("b");
    what.textContent = labels[verb] || verb;
    var rest = document.createElement("span");
    rest.textContent = " " + (d.transfer_id || ev.subject || "").slice(0, 8) + " " + (modes[d.mode] || d.mode || "") + " " + money(d.price) +
      ((d.fields && d.fields.length) ? " · " + d.fields.join(", ") : "");
    li.appendChild(when); li.appendChild(document.createTextNode(" ")); li.appendChild(what); li.appendChild(rest);
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) { list.removeChild(list.lastChild); }
    if (waiting) { waiting.hidden = true; }
  }

  (list.dataset.types || "").split(",").forEach(function (verb) {
    source.addEventListener("techbridge.matching.transfer." + verb + ".v1", function (m) { show(verb, m); });
  });
  source.onopen = function () { if (state) { state.className = "dot on"; } };
  source.addEventListener("end", function () {
    source.close();
    if (state) { state.className = "dot off"; }
    if (waiting) { waiting.hidden = false; waiting.textContent = list.dataset.ended; }
  });
  source.onerror = function () { if (state) { state.className = "dot off"; } };
})();
