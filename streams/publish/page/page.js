/* suitcase live page: polls /api/estimates and draws it. No network beyond this server. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var SOURCES = {
    "border.departures": "departures",
    "travellers.declarations": "declarations",
    "customs.inspections": "inspections",
    "customs.exports": "formal exports",
    "payments.cards": "card payments",
    "fx.rates": "exchange rates"
  };
  var LABELS = {
    carpet: "carpets", kilim: "kilims", textiles: "textiles", ceramics: "ceramics",
    metalwork: "metalwork", jewelry: "jewellery", woodwork: "woodwork", basketry: "basketry",
    gulf: "Gulf states", iraq: "Iraq", caspian: "Caspian neighbours", turkey_caucasus: "Turkey and Caucasus",
    other: "other countries"
  };
  // Rough outline of Iran (lon, lat), clockwise from the north-west corner.
  var OUTLINE = [
    [44.8, 39.7], [45.5, 39.0], [46.5, 38.9], [47.0, 39.2], [48.3, 39.3], [48.0, 38.8], [48.9, 38.4],
    [49.0, 37.6], [49.5, 37.5], [50.3, 37.1], [51.5, 36.7], [53.0, 36.8], [53.9, 37.0], [54.0, 37.4],
    [55.4, 38.0], [57.2, 38.2], [59.3, 37.5], [60.4, 36.6], [61.2, 36.6], [61.1, 35.6], [60.6, 34.3],
    [60.9, 33.5], [60.6, 33.0], [60.9, 31.5], [61.7, 31.4], [61.8, 30.8], [60.9, 29.9], [61.8, 28.6],
    [62.8, 28.2], [62.4, 27.3], [63.2, 27.2], [62.8, 26.6], [61.9, 26.2], [61.6, 25.2], [59.5, 25.4],
    [57.8, 25.6], [57.3, 26.8], [56.3, 27.2], [55.5, 26.7], [54.8, 26.5], [53.5, 26.8], [52.5, 27.4],
    [51.4, 27.9], [50.8, 28.9], [50.1, 29.9], [49.5, 30.0], [48.9, 30.3], [48.0, 30.0], [47.7, 31.0],
    [47.4, 32.4], [46.1, 33.0], [45.4, 33.9], [45.5, 34.6], [46.1, 35.1], [45.4, 35.9], [45.0, 36.7],
    [44.8, 37.2], [44.3, 37.9], [44.2, 38.4], [44.4, 39.4]
  ];

  var state = { data: null, week: null, chart: null, failures: 0 };
  window.suitcasePage = state;

  function usd(x) {
    if (x === null || x === undefined) { return "\u2013"; }
    return "$" + Math.round(x).toLocaleString("en-US");
  }
  function usdShort(x) {
    if (x === null || x === undefined) { return ""; }
    var a = Math.abs(x);
    if (a >= 1e6) { return "$" + (x / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M"; }
    if (a >= 1e3) { return "$" + (x / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k"; }
    return "$" + Math.round(x);
  }
  function count(x) { return x === null || x === undefined ? "\u2013" : Number(x).toLocaleString("en-US"); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function cents(x) { return x === null || x === undefined ? "" : String(x); }
  function interval(cell) {
    if (cell.suppressed) { return cell.note; }
    if (cell.ci_low_usd === null || cell.ci_high_usd === null) {
      return cell.estimate_usd === null ? "" : "no interval yet";
    }
    return usd(cell.ci_low_usd) + " to " + usd(cell.ci_high_usd);
  }
  var SHORT = { few_travellers: "too few travellers", few_inspected: "too few inspected", complementary: "protects a blank cell" };
  function blankShort(reason) {
    return "blank: " + String(reason).split(";").map(function (r) { return SHORT[r] || r; }).join(", ");
  }
  function hijri(w) { return w.solar_hijri_start + " to " + w.solar_hijri_end; }
  function name(key) { return LABELS[key] || key; }

  function drawHeadline(d) {
    var c = d.current;
    document.getElementById("current-week").textContent =
      "This week, " + c.week + " (Solar Hijri " + hijri(c) + ")";
    var big = document.getElementById("current-estimate");
    big.textContent = c.suppressed ? "blank" : usd(c.estimate_usd);
    big.setAttribute("data-usd", cents(c.estimate_usd));
    document.getElementById("current-kind").textContent =
      (c.kind === "nowcast" ? "Nowcast of the whole week" : "Week to date, Monday\u2013now") +
      (d.event_clock ? " (events through " + d.event_clock.replace("T", " ") + " Tehran, " +
        d.event_clock_solar_hijri + ")" : "");
    var iv = document.getElementById("current-interval");
    iv.setAttribute("data-low", cents(c.ci_low_usd));
    iv.setAttribute("data-high", cents(c.ci_high_usd));
    if (c.suppressed) {
      iv.textContent = c.note;
    } else if (c.ci_low_usd === null || c.ci_high_usd === null) {
      iv.textContent = c.estimate_usd === null ? "" : "No 95% interval yet: " + c.note.replace(/^no 95% interval yet: /, "") + ".";
    } else {
      iv.textContent = "95% interval: between " + usd(c.ci_low_usd) + " and " + usd(c.ci_high_usd) + ".";
    }
    var f = document.getElementById("current-formal");
    f.setAttribute("data-usd", cents(c.formal_exports_usd));
    var ratio = c.estimate_usd && c.formal_exports_usd ? (c.estimate_usd / c.formal_exports_usd) : null;
    f.textContent = "Formal handicraft exports in the same days: " + usd(c.formal_exports_usd) +
      (ratio ? " (" + ratio.toFixed(2) + " informal dollars per formal dollar)" : "") + ".";
    document.getElementById("current-basis").textContent =
      "From " + count(c.n_departures) + " departures and " + count(c.n_inspected) +
      " random inspections this week; " + count(d.accepted_events) + " events accepted in all.";
  }

  function drawWeeklyTable(d) {
    var body = document.querySelector("#weekly-table tbody");
    body.textContent = "";
    d.weeks.slice().reverse().forEach(function (w) {
      var tr = el("tr", { "data-week": w.week, "class": w.to_date ? "to-date" : "" });
      tr.appendChild(el("td", {}, w.week + (w.to_date ? " (to date)" : "")));
      tr.appendChild(el("td", {}, hijri(w)));
      var est = el("td", { "class": "r estimate" + (w.suppressed ? " blank" : ""), "data-usd": cents(w.estimate_usd) },
        w.suppressed ? "blank" : usd(w.estimate_usd));
      tr.appendChild(est);
      tr.appendChild(el("td", { "class": "r interval" + (w.suppressed ? " blank" : ""),
        "data-low": cents(w.ci_low_usd), "data-high": cents(w.ci_high_usd), "title": w.note || "" }, interval(w)));
      tr.appendChild(el("td", { "class": "r formal", "data-usd": cents(w.formal_exports_usd) }, usd(w.formal_exports_usd)));
      var ratio = w.estimate_usd && w.formal_exports_usd ? (w.estimate_usd / w.formal_exports_usd).toFixed(2) : "\u2013";
      tr.appendChild(el("td", { "class": "r" }, ratio));
      tr.appendChild(el("td", {}, w.vintage || (w.to_date ? "live" : "not yet published")));
      body.appendChild(tr);
    });
  }

  function drawWeeklyChart(d) {
    var box = document.getElementById("weekly-chart");
    var weeks = d.weeks;
    var xs = weeks.map(function (_, i) { return i; });
    function col(name, keep) {
      return weeks.map(function (w) { return keep(w) && w[name] !== null ? w[name] : null; });
    }
    var closed = function (w) { return !w.to_date; };
    var open = function (w) { return w.to_date; };
    var data = [xs, col("ci_low_usd", closed), col("ci_high_usd", closed), col("estimate_usd", closed),
      col("estimate_usd", open), col("formal_exports_usd", function () { return true; })];
    state.weeklyData = data;
    state.weeklyWeeks = weeks.map(function (w) { return w.week; });
    var width = Math.max(400, box.clientWidth - 4);
    if (state.chart && state.chartWidth === width && state.chartWeeks === state.weeklyWeeks.join()) {
      state.chart.setData(data);
      return;
    }
    if (state.chart) { state.chart.destroy(); }
    box.textContent = "";
    state.chartWidth = width;
    state.chartWeeks = state.weeklyWeeks.join();
    var labels = weeks.map(function (w) { return w.week.slice(5) + "\n" + w.solar_hijri_start.slice(5); });
    var opts = {
      width: width, height: 300,
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, weeks.length - 0.5)] }, y: { range: function (u, lo, hi) { return [0, (hi || 1) * 1.08]; } } },
      axes: [
        { values: function (u, ticks) { return ticks.map(function (t) { return Number.isInteger(t) && labels[t] ? labels[t] : ""; }); },
          splits: function () { return xs; }, size: 46, grid: { show: false } },
        { values: function (u, ticks) { return ticks.map(usdShort); }, size: 64, grid: { stroke: "#eef1f4" } }
      ],
      series: [
        { label: "ISO week" },
        { label: "95% interval, low", stroke: "rgba(31,95,153,0.35)", width: 1 },
        { label: "high", stroke: "rgba(31,95,153,0.35)", width: 1 },
        { label: "informal estimate (whole weeks)", stroke: "#1f5f99", width: 2.5, points: { size: 7, fill: "#1f5f99" } },
        { label: "this week so far", stroke: "#1f5f99", width: 0, points: { size: 9, fill: "#ffffff", stroke: "#1f5f99", width: 2 } },
        { label: "formal exports", stroke: "#b5651d", width: 2, dash: [6, 4], points: { size: 5, fill: "#b5651d" } }
      ],
      bands: [{ series: [2, 1], fill: "rgba(31,95,153,0.16)" }],
      legend: { live: false }
    };
    state.chart = new uPlot(opts, data, box);
  }

  function bars(container, cells, total) {
    container.textContent = "";
    if (!cells || !cells.length) {
      container.appendChild(el("p", { "class": "light" }, "no cells yet"));
      return;
    }
    var shown = cells.slice().sort(function (a, b) { return (b.estimate_usd || -1) - (a.estimate_usd || -1); });
    var max = 1;
    shown.forEach(function (c) {
      [c.estimate_usd, c.ci_high_usd, c.formal_exports_usd].forEach(function (v) { if (v !== null && v > max) { max = v; } });
    });
    var rowH = 26, left = 150, right = 190, width = 640, plot = width - left - right;
    var root = svg("svg", { viewBox: "0 0 " + width + " " + (rowH * shown.length + 24), role: "img" });
    shown.forEach(function (c, i) {
      var y = i * rowH + 4;
      var g = svg("g", { "class": "cell", "data-key": c.key, "data-usd": cents(c.estimate_usd),
        "data-low": cents(c.ci_low_usd), "data-high": cents(c.ci_high_usd), "data-formal": cents(c.formal_exports_usd),
        "data-suppressed": c.suppressed || "" });
      g.appendChild(svg("text", { x: left - 8, y: y + 15, "text-anchor": "end", fill: "#1d2733", "font-size": 13 }, name(c.key)));
      if (c.formal_exports_usd) {
        g.appendChild(svg("rect", { x: left, y: y + 15, width: Math.max(1, plot * c.formal_exports_usd / max), height: 4, fill: "#b5651d", opacity: 0.8 }));
      }
      if (c.suppressed) {
        var t = svg("text", { x: left + 4, y: y + 13, fill: "#9aa4b1", "font-size": 12, "font-style": "italic" }, blankShort(c.suppressed));
        t.appendChild(svg("title", {}, c.note));
        g.appendChild(t);
      } else if (c.estimate_usd !== null) {
        g.appendChild(svg("rect", { x: left, y: y + 3, width: Math.max(1, plot * c.estimate_usd / max), height: 11, fill: "#1f5f99", opacity: 0.85 }));
        if (c.ci_low_usd !== null && c.ci_high_usd !== null) {
          var x1 = left + plot * Math.max(0, c.ci_low_usd) / max, x2 = left + plot * c.ci_high_usd / max;
          g.appendChild(svg("line", { x1: x1, x2: x2, y1: y + 8.5, y2: y + 8.5, stroke: "#0c2f4f", "stroke-width": 1.2 }));
          g.appendChild(svg("line", { x1: x1, x2: x1, y1: y + 4, y2: y + 13, stroke: "#0c2f4f", "stroke-width": 1.2 }));
          g.appendChild(svg("line", { x1: x2, x2: x2, y1: y + 4, y2: y + 13, stroke: "#0c2f4f", "stroke-width": 1.2 }));
        }
        var label = usd(c.estimate_usd) + (c.ci_low_usd !== null && c.ci_high_usd !== null ?
          "  (" + usdShort(c.ci_low_usd) + "\u2013" + usdShort(c.ci_high_usd) + ")" : "  (no interval yet)");
        g.appendChild(svg("text", { x: width - right + 8, y: y + 13, fill: "#1d2733", "font-size": 12 }, label));
      }
      root.appendChild(g);
    });
    var share = total && total.estimate_usd ? "" : "";
    var ly = rowH * shown.length + 18;
    root.appendChild(svg("rect", { x: left, y: ly - 8, width: 12, height: 8, fill: "#1f5f99" }));
    root.appendChild(svg("text", { x: left + 16, y: ly, "font-size": 11, fill: "#5f6b7a" }, "informal estimate, bar: 95% interval" + share));
    root.appendChild(svg("rect", { x: left + 240, y: ly - 6, width: 12, height: 4, fill: "#b5651d" }));
    root.appendChild(svg("text", { x: left + 256, y: ly, "font-size": 11, fill: "#5f6b7a" }, "formal exports"));
    container.appendChild(root);
  }

  function drawMap(posts, cells) {
    var box = document.getElementById("map");
    box.textContent = "";
    var byKey = {};
    (cells || []).forEach(function (c) { byKey[c.key] = c; });
    var k = 27, lon0 = 43.6, lat1 = 40.2, cos = Math.cos(32.5 * Math.PI / 180);
    function px(lon) { return (lon - lon0) * k * cos; }
    function py(lat) { return (lat1 - lat) * k; }
    var width = px(64.0), height = py(24.6);
    var root = svg("svg", { viewBox: "0 0 " + width.toFixed(0) + " " + height.toFixed(0), role: "img", "aria-label": "map of the border posts" });
    root.appendChild(svg("rect", { x: 0, y: 0, width: width, height: height, fill: "#eef4f8" }));
    var d = OUTLINE.map(function (p, i) { return (i ? "L" : "M") + px(p[0]).toFixed(1) + "," + py(p[1]).toFixed(1); }).join("") + "Z";
    root.appendChild(svg("path", { d: d, fill: "#ffffff", stroke: "#aab6c3", "stroke-width": 1.2 }));
    root.appendChild(svg("text", { x: px(50.6), y: py(38.7), "font-size": 11, fill: "#7d93a8", "font-style": "italic" }, "Caspian Sea"));
    root.appendChild(svg("text", { x: px(50.3), y: py(26.9), "font-size": 11, fill: "#7d93a8", "font-style": "italic" }, "Persian Gulf"));
    root.appendChild(svg("text", { x: px(57.6), y: py(24.9), "font-size": 11, fill: "#7d93a8", "font-style": "italic" }, "Gulf of Oman"));
    var max = 1;
    posts.forEach(function (p) { var c = byKey[p.code]; if (c && c.estimate_usd > max) { max = c.estimate_usd; } });
    var placed = posts.slice().sort(function (a, b) {
      return ((byKey[b.code] || {}).estimate_usd || 0) - ((byKey[a.code] || {}).estimate_usd || 0);
    });
    placed.forEach(function (p) {
      var c = byKey[p.code] || { estimate_usd: null, suppressed: null };
      var x = px(p.lon), y = py(p.lat);
      var g = svg("g", { "class": "post", "data-key": p.code, "data-usd": cents(c.estimate_usd), "data-suppressed": c.suppressed || "" });
      var title = p.code + " \u2013 " + p.place + " (" + p.mode + "): " +
        (c.suppressed ? c.note : usd(c.estimate_usd) + (c.ci_low_usd !== null && c.ci_high_usd !== null && c.ci_low_usd !== undefined ?
          ", 95% interval " + usd(c.ci_low_usd) + " to " + usd(c.ci_high_usd) : ""));
      g.appendChild(svg("title", {}, title));
      if (c.estimate_usd !== null && c.estimate_usd !== undefined && !c.suppressed) {
        var r = 3 + 26 * Math.sqrt(Math.max(0, c.estimate_usd) / max);
        g.appendChild(svg("circle", { cx: x, cy: y, r: r, fill: "rgba(31,95,153,0.45)", stroke: "#1f5f99", "stroke-width": 1 }));
      } else {
        g.appendChild(svg("circle", { cx: x, cy: y, r: 4, fill: "none", stroke: "#9aa4b1", "stroke-width": 1.2, "stroke-dasharray": "2,2" }));
      }
      g.appendChild(svg("circle", { cx: x, cy: y, r: 1.6, fill: "#0c2f4f" }));
      g.appendChild(svg("text", { x: x + 5, y: y - 4, "font-size": 10, fill: "#1d2733" }, p.code));
      root.appendChild(g);
    });
    var km = 500, len = km / 111.2 * k; // kilometres along a meridian
    var sx = 14, sy = height - 16;
    root.appendChild(svg("line", { x1: sx, x2: sx + len, y1: sy, y2: sy, stroke: "#1d2733", "stroke-width": 2 }));
    root.appendChild(svg("line", { x1: sx, x2: sx, y1: sy - 4, y2: sy + 4, stroke: "#1d2733" }));
    root.appendChild(svg("line", { x1: sx + len, x2: sx + len, y1: sy - 4, y2: sy + 4, stroke: "#1d2733" }));
    root.appendChild(svg("text", { x: sx, y: sy - 7, "font-size": 10, fill: "#1d2733" }, km + " km"));
    root.appendChild(svg("text", { x: width - 8, y: 14, "font-size": 10, fill: "#7d93a8", "text-anchor": "end" }, "dashed circle: blank cell; outline is rough"));
    box.appendChild(root);
  }

  function sourcesText(sources) {
    var keys = Object.keys(sources || {});
    if (!keys.length) { return "first figure (all events so far)"; }
    return keys.map(function (t) {
      var what = SOURCES[t] || t;
      return count(sources[t]) + " " + (sources[t] === 1 ? what.replace(/s$/, "") : what);
    }).join(", ");
  }

  function drawRevisions(d) {
    var box = document.getElementById("revisions");
    if (!d.revisions.length) { return; }
    box.textContent = "";
    d.revisions.forEach(function (r) {
      var div = el("div", { "class": "revision-week", "data-week": r.week });
      div.appendChild(el("h3", {}, r.week + " (Solar Hijri " + hijri(r) + ")"));
      var table = el("table", { "class": "numbers" });
      var head = el("tr");
      ["published (UTC)", "vintage", "informal estimate", "change", "95% interval", "what moved it (accepted events of the week since the previous vintage)"].forEach(function (h, i) {
        head.appendChild(el("th", { "class": i >= 2 && i <= 4 ? "r" : "" }, h));
      });
      table.appendChild(head);
      r.vintages.forEach(function (v) {
        var tr = el("tr", { "class": "vintage", "data-status": v.status });
        tr.appendChild(el("td", {}, v.vintage_time.replace("T", " ").slice(0, 19)));
        tr.appendChild(el("td", {}, v.status));
        tr.appendChild(el("td", { "class": "r", "data-usd": cents(v.estimate_usd) }, v.suppressed ? "blank" : usd(v.estimate_usd)));
        var ch = v.change_usd === null || v.change_usd === undefined ? "" : (v.change_usd >= 0 ? "+" : "\u2212") + usd(Math.abs(v.change_usd));
        tr.appendChild(el("td", { "class": "r" }, ch));
        tr.appendChild(el("td", { "class": "r" }, interval({ suppressed: v.suppressed, note: "blank", estimate_usd: v.estimate_usd, ci_low_usd: v.ci_low_usd, ci_high_usd: v.ci_high_usd })));
        tr.appendChild(el("td", { "class": "sources" }, v.status === "flash" ? "flash: " + sourcesText(v.sources_changed) : sourcesText(v.sources_changed)));
        table.appendChild(tr);
      });
      div.appendChild(table);
      box.appendChild(div);
    });
  }

  function drawBreakdowns(d) {
    var select = document.getElementById("week-select");
    var weeks = Object.keys(d.breakdowns).sort();
    if (!weeks.length) { return; }
    var current = d.current.week;
    var closed = weeks.filter(function (w) { return w !== current; });
    if (!state.week || weeks.indexOf(state.week) < 0) {
      state.week = closed.length ? closed[closed.length - 1] : current;
    }
    var options = weeks.slice().reverse().join();
    if (select.getAttribute("data-weeks") !== options) {
      select.textContent = "";
      weeks.slice().reverse().forEach(function (w) {
        select.appendChild(el("option", { value: w }, w + (w === current ? " (to date)" : "")));
      });
      select.setAttribute("data-weeks", options);
    }
    select.value = state.week;
    var info = d.weeks.filter(function (w) { return w.week === state.week; })[0];
    document.getElementById("week-select-label").textContent = info ?
      "Solar Hijri " + hijri(info) + (state.week === current ? ", week to date" : ", whole week") : "";
    var cells = d.breakdowns[state.week];
    ["category", "destination_region", "border_post"].forEach(function (domain) {
      bars(document.getElementById("bars-" + domain), cells[domain], info);
    });
    drawMap(d.posts, cells.border_post);
  }

  function draw(d) {
    state.data = d;
    var status = document.getElementById("status");
    if (!d.ready) {
      status.textContent = d.waiting || "waiting";
      status.className = "status";
      return;
    }
    var same = JSON.stringify(Object.assign({}, d, { generated_at: null }));
    if (same !== state.drawnFrom) {
      state.drawnFrom = same;
      drawHeadline(d);
      drawWeeklyChart(d);
      drawWeeklyTable(d);
      drawBreakdowns(d);
      drawRevisions(d);
      document.body.setAttribute("data-drawn", d.generated_at);
    }
    status.textContent = "live, updated " + new Date().toLocaleTimeString("en-GB") + " (every " + d.poll_seconds + " s)";
    status.className = "status live";
  }
  function poll() {
    var wait = (state.data && state.data.poll_seconds) || 3;
    fetch("/api/estimates", { cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (d) { state.failures = 0; draw(d); })
      .catch(function () {
        state.failures += 1;
        var status = document.getElementById("status");
        status.textContent = "cannot reach the worker; retrying";
        status.className = "status stale";
      })
      .then(function () { setTimeout(poll, wait * 1000); });
  }

  document.getElementById("week-select").addEventListener("change", function (e) {
    state.week = e.target.value;
    if (state.data) { drawBreakdowns(state.data); }
  });
  window.addEventListener("resize", function () { if (state.data && state.data.ready) { drawWeeklyChart(state.data); } });
  poll();
}());
