// The build page's live log: follows GET /api/v1/builds/<id>/log/stream
// (server-sent events), renders ANSI colours as spans, numbers the lines
// with anchors and follows the tail until the reader scrolls up.
//
// Every `log` event has the id `<attempt>:<offset>`. The browser sends the
// last one back by itself when it reconnects; when the stream has to be
// opened anew (it was closed after an error, or the tab comes back from the
// background and the stream is gone) the page asks for `?from=<last id>`.
// Either way the server resumes exactly there: no gap, no line twice.
(function () {
  "use strict";
  var box = document.getElementById("log");
  if (!box || !window.EventSource) return;
  var lines = box.querySelector(".lines");
  var stateBadge = document.getElementById("build-state");
  var followButton = document.getElementById("follow");
  var streamUrl = box.getAttribute("data-stream");

  var lineCount = 0;
  var current = null; // the <span class="t"> of the line being written
  var style = {};
  var pending = ""; // an escape sequence cut at the end of an event
  var lastId = null;
  var finished = false;
  var following = !location.hash;
  var source = null;

  // ---- rendering -------------------------------------------------------
  function newLine() {
    lineCount += 1;
    var row = document.createElement("div");
    row.className = "line";
    row.id = "L" + lineCount;
    var number = document.createElement("a");
    number.className = "ln";
    number.href = "#L" + lineCount;
    number.textContent = lineCount;
    var text = document.createElement("span");
    text.className = "t";
    row.appendChild(number);
    row.appendChild(text);
    lines.appendChild(row);
    current = text;
    if (location.hash === "#L" + lineCount) {
      row.classList.add("target");
      row.scrollIntoView({ block: "center" });
    }
  }

  function xterm256(n) {
    if (n < 16) return null;
    if (n >= 232) { var g = 8 + (n - 232) * 10; return "rgb(" + g + "," + g + "," + g + ")"; }
    n -= 16;
    var steps = [0, 95, 135, 175, 215, 255];
    return "rgb(" + steps[Math.floor(n / 36)] + "," + steps[Math.floor(n / 6) % 6] + "," + steps[n % 6] + ")";
  }

  function applySgr(params) {
    var codes = params === "" ? [0] : params.split(";").map(Number);
    for (var i = 0; i < codes.length; i++) {
      var c = codes[i];
      if (c === 0) style = {};
      else if (c === 1) style.b = true;
      else if (c === 2) style.dim = true;
      else if (c === 3) style.i = true;
      else if (c === 4) style.u = true;
      else if (c === 22) { delete style.b; delete style.dim; }
      else if (c === 23) delete style.i;
      else if (c === 24) delete style.u;
      else if (c >= 30 && c <= 37) { style.fg = c - 30; delete style.fgRgb; }
      else if (c >= 90 && c <= 97) { style.fg = c - 90 + 8; delete style.fgRgb; }
      else if (c === 39) { delete style.fg; delete style.fgRgb; }
      else if (c >= 40 && c <= 47) { style.bg = c - 40; delete style.bgRgb; }
      else if (c >= 100 && c <= 107) { style.bg = c - 100; delete style.bgRgb; }
      else if (c === 49) { delete style.bg; delete style.bgRgb; }
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
        var n = codes[i + 2], key = c === 38 ? "fg" : "bg";
        if (n < 16) { style[key] = key === "bg" ? n % 8 : n; delete style[key + "Rgb"]; }
        else { style[key + "Rgb"] = xterm256(n); delete style[key]; }
        i += 2;
      } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
        style[(c === 38 ? "fg" : "bg") + "Rgb"] = "rgb(" + codes[i + 2] + "," + codes[i + 3] + "," + codes[i + 4] + ")";
        delete style[c === 38 ? "fg" : "bg"];
        i += 4;
      }
    }
  }

  function writeText(text) {
    if (text === "") return;
    if (!current) newLine();
    var classes = [];
    if (style.b) classes.push("b");
    if (style.dim) classes.push("dim");
    if (style.i) classes.push("i");
    if (style.u) classes.push("u");
    if (style.fg !== undefined) classes.push("fg" + style.fg);
    if (style.bg !== undefined) classes.push("bg" + style.bg);
    if (!classes.length && !style.fgRgb && !style.bgRgb) {
      current.appendChild(document.createTextNode(text));
      return;
    }
    var span = document.createElement("span");
    span.className = classes.join(" ");
    if (style.fgRgb) span.style.color = style.fgRgb;
    if (style.bgRgb) span.style.backgroundColor = style.bgRgb;
    span.textContent = text;
    current.appendChild(span);
  }

  var ESCAPE = /\x1b\[([0-9;?]*)([A-Za-z])/g;

  function writeStyled(text) {
    var at = 0, match;
    ESCAPE.lastIndex = 0;
    while ((match = ESCAPE.exec(text)) !== null) {
      writeText(text.slice(at, match.index));
      if (match[2] === "m") applySgr(match[1]);
      at = ESCAPE.lastIndex;
    }
    // Other escapes (cursor moves) are dropped; lone ESC bytes too.
    writeText(text.slice(at).replace(/\x1b/g, ""));
  }

  function feed(text) {
    text = pending + text;
    pending = "";
    var cut = text.lastIndexOf("\x1b");
    if (cut !== -1 && text.length - cut < 24 && !/^\x1b\[[0-9;?]*[A-Za-z]/.test(text.slice(cut))) {
      pending = text.slice(cut);
      text = text.slice(0, cut);
    }
    var parts = text.split("\n");
    for (var p = 0; p < parts.length; p++) {
      if (p > 0) {
        if (!current) newLine(); // an empty line still counts
        current = null;
      }
      writeStyled(parts[p]);
    }
  }

  function note(className, text) {
    current = null;
    var div = document.createElement("div");
    div.className = className;
    div.textContent = text;
    lines.appendChild(div);
  }

  // ---- following the tail ---------------------------------------------
  function atBottom() {
    return box.scrollTop + box.clientHeight >= box.scrollHeight - 24;
  }
  // Where the page itself last scrolled to: only a scroll above it is
  // the reader's (scroll events arrive late, after more lines landed).
  var autoTop = 0;
  function toBottom() {
    box.scrollTop = box.scrollHeight;
    autoTop = box.scrollTop;
  }
  box.addEventListener("scroll", function () {
    if (box.scrollTop < autoTop - 4) following = false;
    else if (atBottom()) following = true;
    autoTop = Math.min(autoTop, box.scrollTop);
    followButton.hidden = following;
  });
  followButton.addEventListener("click", function () {
    following = true;
    followButton.hidden = true;
    toBottom();
  });
  function afterWrite() {
    if (following) toBottom();
  }

  // ---- the stream -----------------------------------------------------
  function setState(state) {
    if (!stateBadge) return;
    stateBadge.textContent = state;
    stateBadge.className = "state " + state;
  }

  function connect() {
    if (finished) return;
    var url = streamUrl + (lastId ? "?from=" + encodeURIComponent(lastId) : "");
    source = new EventSource(url);
    source.addEventListener("log", function (event) {
      lastId = event.lastEventId;
      if (stateBadge && stateBadge.textContent === "queued") setState("running");
      feed(event.data);
      afterWrite();
    });
    source.addEventListener("attempt", function (event) {
      lastId = event.lastEventId;
      note("divider", "Attempt " + event.data + " (the previous runner was lost; its log is kept above)");
      afterWrite();
    });
    source.addEventListener("end", function (event) {
      finished = true;
      source.close();
      setState(event.data);
      note("status", "Build " + event.data + ".");
      var cancel = document.getElementById("cancel-form");
      if (cancel) cancel.remove();
      afterWrite();
    });
    source.onerror = function () {
      // The browser retries by itself while readyState is CONNECTING; when
      // it gave up (CLOSED), open a new stream from the last id.
      if (source.readyState === EventSource.CLOSED && !finished) {
        setTimeout(connect, 1000);
      }
    };
  }

  // A tab in the background may have its connection dropped; coming back,
  // make sure a stream is open again, from where the page stopped.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !finished && source && source.readyState === EventSource.CLOSED) connect();
  });

  // Back on the network (a laptop waking, Wi-Fi changing): the old stream
  // may be a dead socket the browser has not noticed; open a fresh one from
  // the last id rather than waiting for its retry.
  window.addEventListener("online", function () {
    if (finished) return;
    if (source) source.close();
    connect();
  });

  connect();
})();
