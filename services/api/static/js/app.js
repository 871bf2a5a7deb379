// The hash router: #/runs, #/runs/7, #/compare?ids=1,2, #/sweeps, #/sweeps/3, #/leaderboard?env=pong, #/benchmarks.
import { token } from "./api.js";
import benchmarksPage from "./pages/benchmarks.js";
import comparePage from "./pages/compare.js";
import leaderboardPage from "./pages/leaderboard.js";
import runPage from "./pages/run.js";
import runsPage from "./pages/runs.js";
import sweepPage from "./pages/sweep.js";
import sweepsPage from "./pages/sweeps.js";

const ROUTES = [
  [/^\/runs\/?$/, runsPage, "runs"],
  [/^\/runs\/(\d+)$/, runPage, "runs"],
  [/^\/compare\/?$/, comparePage, "compare"],
  [/^\/sweeps\/?$/, sweepsPage, "sweeps"],
  [/^\/sweeps\/(\d+)$/, sweepPage, "sweeps"],
  [/^\/leaderboard\/?$/, leaderboardPage, "leaderboard"],
  [/^\/benchmarks\/?$/, benchmarksPage, "benchmarks"],
];

/**
 * What a page gets: its route arguments and query, an AbortSignal that fires when the user navigates away
 * (pending requests are cancelled), and `every` for polling that stops with the page.
 */
function context(args, params) {
  const controller = new AbortController();
  const timers = new Set();
  const ctx = {
    args, params,
    signal: controller.signal,
    get alive() { return !controller.signal.aborted; },
    /** Call `fn` every `ms` after the previous call settled; it stops when fn returns false. */
    every(ms, fn) {
      const tick = async () => {
        timers.delete(timer);
        if (!ctx.alive) return;
        const again = await fn();
        if (again !== false && ctx.alive) schedule();
      };
      let timer;
      const schedule = () => timers.add((timer = setTimeout(tick, ms)));
      schedule();
    },
    dispose() {
      controller.abort();
      for (const t of timers) clearTimeout(t);
    },
  };
  return ctx;
}

let current = null;

async function render() {
  current?.dispose();
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const [path, query = ""] = raw.split("?");
  const view = document.getElementById("view");
  // A fresh root per navigation: a slow page that finishes after the user left writes into a detached node.
  const root = document.createElement("div");
  view.replaceChildren(root);
  for (const [pattern, page, nav] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
    current = context(match.slice(1), new URLSearchParams(query));
    try {
      await page(root, current);
    } catch (e) {
      if (e?.name !== "AbortError") root.append(Object.assign(document.createElement("pre"), { className: "banner bad", textContent: String(e?.stack || e) }));
    }
    return;
  }
  root.textContent = `No page at ${path}.`;
}

function setupToken() {
  const input = document.getElementById("token");
  input.value = token.get();
  input.addEventListener("change", () => token.set(input.value.trim()));
}

setupToken();
window.addEventListener("hashchange", render);
render();
