// Injected at the end of a report page by dashboard_browser.rs; runs in headless Chromium once
// the page has loaded (and every resource has loaded or failed) and writes what it found, as
// JSON, into <pre id="dom-check"> (read back from --dump-dom). It judges nothing: the Rust test
// asserts on the findings.
addEventListener("load", () => setTimeout(() => {
  "use strict";
  const found = { charts: [], overflow: [], external: [], errors: window.__domCheckErrors || [] };
  const tag = (e) => {
    let s = e.tagName.toLowerCase();
    if (e.id) s += "#" + e.id;
    const cls = e.getAttribute("class");
    if (cls) s += "." + cls.trim().split(/\s+/).join(".");
    const chart = e.closest && e.closest("svg[data-chart]");
    if (chart) s += " in chart " + chart.dataset.chart;
    const text = (e.textContent || "").trim().slice(0, 40);
    return text ? s + " (\"" + text + "\")" : s;
  };
  const box = (e) => e.getBoundingClientRect();
  const outside = (r, p) =>
    r.left < p.left - 1 || r.right > p.right + 1 || r.top < p.top - 1 || r.bottom > p.bottom + 1;
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) {
    found.overflow.push("the page scrolls sideways: " + root.scrollWidth + " > " + root.clientWidth);
  }
  // HTML elements: inside their parent horizontally, and not clipping or scrolling content.
  for (const e of document.body.querySelectorAll("*")) {
    if (e.id === "dom-check" || e.closest("svg") || ["SCRIPT", "STYLE", "BR"].includes(e.tagName)) {
      continue;
    }
    const r = box(e);
    const p = e.parentElement;
    if (r.width === 0 && r.height === 0) continue;
    if (p && p !== document.body && (r.left < box(p).left - 1 || r.right > box(p).right + 1)) {
      found.overflow.push(tag(e) + " sticks out of " + tag(p));
    }
    if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible") {
      found.overflow.push(tag(e) + " clips or scrolls its content (" + e.scrollWidth + " > " + e.clientWidth + ")");
    }
  }
  // SVG: every shape and label inside its chart.
  for (const svg of document.querySelectorAll("svg")) {
    const s = box(svg);
    for (const m of svg.querySelectorAll("rect,circle,polyline,line,text")) {
      const r = box(m);
      if (outside(r, s)) found.overflow.push(tag(m) + " is drawn outside its chart");
    }
  }
  // Charts: size, marks, hover titles.
  for (const svg of document.querySelectorAll("svg.chart")) {
    const r = box(svg);
    const marks = Array.from(svg.querySelectorAll("rect,circle,polyline"));
    found.charts.push({
      name: svg.dataset.chart || "",
      width: r.width,
      height: r.height,
      marks: marks.length,
      untitled: marks.filter((m) => !m.querySelector("title")).length,
      empty_marks: marks.filter((m) => m.tagName !== "polyline" && (box(m).width === 0 || box(m).height === 0)).length,
    });
  }
  // Self-contained: nothing that would load from elsewhere.
  for (const e of document.querySelectorAll("[src],[href],link,iframe,object,embed")) {
    found.external.push(tag(e));
  }
  for (const entry of performance.getEntriesByType("resource")) {
    found.external.push("loaded " + entry.name);
  }
  found.page_height = Math.ceil(root.scrollHeight);
  const pre = document.createElement("pre");
  pre.id = "dom-check";
  pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
}, 0));
