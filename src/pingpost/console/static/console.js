// pingpost console: draws the overview's and a replay's charts with uPlot from the JSON the page carries.
// Every figure is also in the page's tables, so the console reads the same without JavaScript.
(function () {
  "use strict";
  function draw(id, series) {
    var el = document.getElementById(id);
    if (!el || !window.uPlot) { return; }
    var xs = series.labels.map(function (_, i) { return i; });
    var opts = {
      width: Math.max(el.clientWidth, 300), height: 220,
      scales: { x: { time: false } },
      axes: [
        { values: function (u, ticks) { return ticks.map(function (t) { return series.labels[t] || ""; }); } },
        { label: "pings / sales" },
        { side: 1, scale: "usd", label: "revenue $", grid: { show: false } }
      ],
      series: [
        {},
        { label: "pings", stroke: "#2f5fd0", width: 2 },
        { label: "sales", stroke: "#167a3e", width: 2 },
        { label: "revenue $", stroke: "#a15c00", width: 2, scale: "usd" }
      ]
    };
    new window.uPlot(opts, [xs, series.pings, series.sales, series.revenue], el);
  }
  function drawReplay(id, c) {
    var el = document.getElementById(id);
    if (!el || !window.uPlot || !c.labels) { return; }
    var xs = c.labels.map(function (_, i) { return i; });
    var opts = {
      width: Math.max(el.clientWidth, 300), height: 240,
      scales: { x: { time: false } },
      axes: [
        { values: function (u, ticks) { return ticks.map(function (t) { return c.labels[t] || ""; }); } },
        { scale: "usd", label: "revenue $" },
        { side: 1, label: "sales", grid: { show: false } }
      ],
      series: [
        {},
        { label: "actual revenue $", stroke: "#2f5fd0", width: 2, scale: "usd" },
        { label: "proposed revenue $", stroke: "#a15c00", width: 2, dash: [6, 4], scale: "usd" },
        { label: "actual sales", stroke: "#167a3e", width: 1 },
        { label: "proposed sales", stroke: "#7a1657", width: 1, dash: [6, 4] }
      ]
    };
    new window.uPlot(opts, [xs, c.actual_revenue, c.proposed_revenue, c.actual_sales, c.proposed_sales], el);
  }
  function start() {
    var replay = document.getElementById("replay-chart-data");
    if (replay) { drawReplay("chart-replay", JSON.parse(replay.textContent)); }
    var data = document.getElementById("chart-data");
    if (!data) { return; }
    var charts = JSON.parse(data.textContent);
    draw("chart-hours", charts.hours);
    draw("chart-days", charts.days);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
