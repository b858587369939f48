// Tearsheet interactions: legend toggles, values under the mouse, sortable tables. No network.
(function () {
  "use strict";
  function fmt(v, kind) {
    if (v === null || v === undefined) return "–";
    if (kind === "pct") return (v * 100).toFixed(Math.abs(v) < 0.1 ? 2 : 1) + "%";
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);
  }
  function setupLegend(fig) {
    fig.querySelectorAll("ul.legend li[data-series]").forEach(function (li) {
      li.addEventListener("click", function () {
        var i = li.getAttribute("data-series");
        var off = li.classList.toggle("off");
        fig.querySelectorAll('[data-series="' + i + '"]').forEach(function (el) {
          if (el !== li) el.classList.toggle("hidden-series", off);
        });
      });
    });
  }
  function setupTooltip(fig) {
    var blob = fig.querySelector("script.chart-data");
    var svg = fig.querySelector("svg");
    if (!blob || !svg) return;
    var data = JSON.parse(blob.textContent);
    var plot = fig.getAttribute("data-plot").split(",").map(Number);
    var cursor = svg.querySelector("line.cursor");
    var tip = document.createElement("div");
    tip.className = "tooltip";
    fig.appendChild(tip);
    svg.addEventListener("mousemove", function (ev) {
      var rect = svg.getBoundingClientRect();
      var x = (ev.clientX - rect.left) * plot[4] / rect.width;
      if (x < plot[0] || x > plot[1] || !data.px.length) { hide(); return; }
      var lo = 0, hi = data.px.length - 1;
      while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (data.px[mid] < x) lo = mid; else hi = mid; }
      var i = Math.abs(data.px[lo] - x) <= Math.abs(data.px[hi] - x) ? lo : hi;
      cursor.setAttribute("x1", data.px[i]); cursor.setAttribute("x2", data.px[i]);
      cursor.setAttribute("visibility", "visible");
      var rows = ["<b>" + data.x[i] + "</b>"];
      data.series.forEach(function (s, k) {
        var li = fig.querySelector('ul.legend li[data-series="' + k + '"]');
        if (li && li.classList.contains("off")) return;
        rows.push('<div class="row"><span><span class="swatch" style="background:' + s.color + '"></span> ' +
                  s.name.replace(/[&<>"]/g, "") + "</span><span>" + fmt(s.y[i], data.fmt) + "</span></div>");
      });
      tip.innerHTML = rows.join("");
      tip.style.display = "block";
      var left = ev.clientX - fig.getBoundingClientRect().left + 14;
      if (left + tip.offsetWidth > fig.clientWidth) left -= tip.offsetWidth + 28;
      tip.style.left = left + "px";
      tip.style.top = (ev.clientY - fig.getBoundingClientRect().top + 10) + "px";
    });
    svg.addEventListener("mouseleave", hide);
    function hide() { tip.style.display = "none"; cursor.setAttribute("visibility", "hidden"); }
  }
  function setupSort(table) {
    table.querySelectorAll("th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asc = th.getAttribute("data-dir") !== "asc";
        th.setAttribute("data-dir", asc ? "asc" : "desc");
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  document.querySelectorAll("figure.chart").forEach(function (fig) { setupLegend(fig); setupTooltip(fig); });
  document.querySelectorAll("table.data").forEach(setupSort);
  document.body.setAttribute("data-ready", "1");
})();
