// #/leaderboard?env=pong: Elo ratings with their intervals, the pairwise win-rate matrix and game counts.
import { api, envs } from "../api.js";
import { badge, diverging, h, num, steps, svg, table, unavailable } from "../ui.js";

export default async function leaderboardPage(root, ctx) {
  let env = ctx.params.get("env");
  let twoPlayer = [];
  try {
    twoPlayer = (await envs()).filter((e) => e.players).map((e) => e.name);
  } catch {
    /* the env list is a convenience; a typed ?env= still works */
  }
  env ||= twoPlayer.includes("pong") ? "pong" : twoPlayer[0] || "pong";
  const select = h("select", { "data-testid": "env", onchange: () => (location.hash = `#/leaderboard?env=${select.value}`) },
    [...new Set([env, ...twoPlayer])].map((name) => h("option", { value: name, selected: name === env }, name)));
  const ratings = h("div", { "data-testid": "ratings" });
  const matrices = h("div", { class: "cols" });
  root.append(h("h1", {}, "Leaderboard", select), ratings, matrices);

  const [board, matrix] = await Promise.all([
    api("/leaderboard", { params: { env }, signal: ctx.signal }).catch((e) => e),
    api(`/leaderboard/${encodeURIComponent(env)}/matrix`, { signal: ctx.signal }).catch((e) => e),
  ]);
  if (!ctx.alive) return;
  ratings.replaceChildren(board instanceof Error ? unavailable(`ratings for ${env}`, board) : ratingsTable(board));
  if (matrix instanceof Error) {
    matrices.replaceChildren(unavailable("win-rate matrix", matrix));
  } else if (!matrix.players.length) {
    matrices.replaceChildren(h("div", { class: "unavailable" }, "No games played yet."));
  } else {
    matrices.replaceChildren(
      h("div", { class: "panel" }, h("h2", {}, "Win rate (row vs column)"), heatmap(matrix, matrix.score, (v) => (v == null ? null : diverging(v)), (v) => (v == null ? "" : `${Math.round(v * 100)}`), "win-rate")),
      h("div", { class: "panel" }, h("h2", {}, "Games played"), heatmap(matrix, matrix.games, greys(matrix.games), (v) => (v ? String(v) : ""), "games")));
  }
}

function ratingsTable(board) {
  const players = board.players || [];
  if (!players.length) return h("div", { class: "unavailable" }, `No rated players for ${board.env} yet.`);
  const lo = Math.min(...players.map((p) => p.lo ?? p.elo)), hi = Math.max(...players.map((p) => p.hi ?? p.elo));
  const W = 260, pad = 8;
  const at = (v) => pad + ((v - lo) / Math.max(1e-9, hi - lo)) * (W - 2 * pad);
  const bar = (p) => svg("svg", { width: W, height: 16 },
    svg("line", { x1: at(p.lo ?? p.elo), x2: at(p.hi ?? p.elo), y1: 8, y2: 8, stroke: "#6a4fb3", "stroke-width": 3, "stroke-linecap": "round", "stroke-opacity": 0.45 }),
    svg("circle", { cx: at(p.elo), cy: 8, r: 4, fill: "#6a4fb3" }, svg("title", {}, `${Math.round(p.elo)} [${Math.round(p.lo)}, ${Math.round(p.hi)}]`)));
  return h("div", {},
    h("div", { class: "muted" }, `anchor: ${board.anchor ?? "–"} · bars show each rating's interval on a shared scale`),
    table([
      { label: "#", value: (p) => String(players.indexOf(p) + 1) },
      { label: "player", value: (p) => h("span", {}, p.kind === "anchor" ? badge("anchor") : "", " ",
        p.run_id ? h("a", { href: `#/runs/${p.run_id}` }, p.label) : p.label) },
      { label: "step", class: "num", value: (p) => (p.step == null ? "–" : steps(p.step)) },
      { label: "elo", class: "num", value: (p) => h("strong", {}, num(Math.round(p.elo))) },
      { label: "interval", class: "num", value: (p) => `${num(Math.round(p.lo))} – ${num(Math.round(p.hi))}` },
      { label: "", value: bar },
      { label: "games", class: "num", value: (p) => num(p.games) },
    ], players));
}

function greys(games) {
  const most = Math.max(1, ...games.flat());
  return (v) => (v ? `rgba(29,31,33,${0.08 + 0.62 * (v / most)})` : null);
}

/** A square heatmap of matrix `values` over the players, labelled on both axes. */
function heatmap(matrix, values, colour, label, name) {
  const n = matrix.players.length;
  const cell = Math.max(12, Math.min(40, Math.floor(520 / n)));
  const left = 120, top = 90, right = 90; // rotated column labels run up and to the right
  const names = matrix.labels || matrix.players;
  const short = (s) => (String(s).length > 16 ? `${String(s).slice(0, 15)}…` : String(s));
  return svg("svg", { width: left + n * cell + right, height: top + n * cell + 4, "data-testid": `heatmap-${name}` },
    names.map((s, i) => svg("text", { x: left - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end" }, short(s), svg("title", {}, String(s)))),
    names.map((s, j) => svg("text", { x: 0, y: 0, transform: `translate(${left + j * cell + cell / 2 + 4} ${top - 6}) rotate(-60)` }, short(s), svg("title", {}, String(s)))),
    values.flatMap((row, i) => row.map((v, j) => svg("g", {},
      svg("rect", { x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1, fill: colour(v) ?? "#f1f1ef" },
        svg("title", {}, `${names[i]} vs ${names[j]}: ${v == null ? "no games" : name === "games" ? `${v} games` : `${(v * 100).toFixed(1)}% (${matrix.games[i][j]} games)`}`)),
      cell >= 24 ? svg("text", { x: left + j * cell + cell / 2, y: top + i * cell + cell / 2 + 4, "text-anchor": "middle", style: `font-size:10px;fill:${dark(colour(v)) ? "#fff" : "#222"}` }, label(v)) : null))));
}

/** Whether a fill colour is dark enough to need white text on it. */
function dark(fill) {
  const m = fill?.match(/[\d.]+/g);
  if (!m) return false;
  const [r, g, b, a = 1] = m.map(Number);
  const lum = (0.299 * r + 0.587 * g + 0.114 * b) / 255;
  return 1 - a * (1 - lum) < 0.55;
}
