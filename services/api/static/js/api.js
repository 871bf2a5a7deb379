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
