// Talking to the shoal API: JSON in and out, the bearer token on every request that has one (reads too,
// for deployments with SHOAL_READ_REQUIRES_TOKEN), errors as ApiError.

const TOKEN_KEY = "shoal.token";

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) || "",
  set: (value) => (value ? localStorage.setItem(TOKEN_KEY, value) : localStorage.removeItem(TOKEN_KEY)),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status; // 0: the request never got an answer (network down, or aborted)
  }
  get aborted() {
    return this.name === "AbortError";
  }
}

/** GET/POST `path`; `params` become the query string (empty values left out). */
export async function api(path, { method = "GET", body, params, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token.get()) headers.Authorization = `Bearer ${token.get()}`;
  let response;
  try {
    response = await fetch(url, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    const error = new ApiError(0, e.name === "AbortError" ? "aborted" : `network error: ${e.message}`);
    error.name = e.name === "AbortError" ? "AbortError" : "ApiError";
    throw error;
  }
  if (!response.ok) throw new ApiError(response.status, await describe(response));
  return response.status === 204 ? null : response.json();
}

async function describe(response) {
  const text = await response.text();
  try {
    const { detail } = JSON.parse(text);
    if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    if (detail) return String(detail);
  } catch {
    /* not JSON: fall through to the raw text */
  }
  return `${response.status} ${response.statusText} ${text.slice(0, 200)}`.trim();
}

// Environment specs change rarely; one request per page load is plenty.
let envsPromise = null;
export function envs() {
  envsPromise ??= api("/envs").catch((e) => {
    envsPromise = null;
    throw e;
  });
  return envsPromise;
}

/** GET `href` with the stored token as a blob. Links and images carry no header, so where reads need a
 *  token (SHOAL_READ_REQUIRES_TOKEN) the dashboard fetches files itself. */
export async function fetchBlob(href) {
  const response = await fetch(href, { headers: token.get() ? { Authorization: `Bearer ${token.get()}` } : {} });
  if (!response.ok) throw new ApiError(response.status, await describe(response));
  const match = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
  return { blob: await response.blob(), name: match ? match[1] : new URL(href, location.origin).pathname.split("/").pop() };
}

/** What an <img> shows for `url`: the URL itself, or where a token is stored (an <img> sends none) the
 *  file fetched with it. */
export async function imageSource(url) {
  return url && token.get() ? URL.createObjectURL((await fetchBlob(url)).blob) : url;
}

/** A link that downloads `href`; while a token is stored, the click fetches the file with it. */
export function downloadLink(href, filename, attrs, text) {
  const link = document.createElement("a");
  Object.assign(link, { href, download: filename });
  for (const [k, v] of Object.entries(attrs || {})) link.setAttribute(k, v);
  link.textContent = text;
  link.addEventListener("click", async (event) => {
    if (!token.get()) return;
    event.preventDefault();
    try {
      const { blob, name } = await fetchBlob(href);
      const saved = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: filename || name });
      saved.click();
      setTimeout(() => URL.revokeObjectURL(saved.href), 60_000);
    } catch (e) {
      link.title = `download failed: ${e.message}`;
      link.classList.add("bad");
    }
  });
  return link;
}
