// The API client: the bearer token (sessionStorage), JSON requests with a timeout, and the
// load of a panel that fetches its own document (loadPanel).

import {$, show} from './dom.js';

const TOKEN_KEY = 'heatmap.token';
// Where the central API lives (CONFIG, never the query string: see docs/page.md).
const base = String(CONFIG.API_BASE_URL || '/api/v1').replace(/\/+$/, '');
let memoryToken = '';  // used only where sessionStorage is disabled

// ---- token ---------------------------------------------------------------------------
function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}
function setToken(value) {
    try {
        if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lasts until the page reloads */ }
    memoryToken = value;
    show($('forget-token'), Boolean(value));
}
function token() { return getToken() || memoryToken || ''; }

// ---- API -----------------------------------------------------------------------------
class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
        super(message);
        this.status = status;
        this.code = code;
        this.retryAfter = retryAfter;
    }
}

async function api(path, controller) {
    const headers = {Accept: 'application/json'};
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; controller.abort(); },
        (Number(CONFIG.REQUEST_TIMEOUT_SECONDS) || 20) * 1000);
    try {
        let resp;
        try {
            resp = await fetch(base + path, {headers: headers, signal: controller.signal, cache: 'no-store'});
        } catch (e) {
            if (timedOut) throw new ApiError(0, 'timeout', 'The API did not answer within ' + (CONFIG.REQUEST_TIMEOUT_SECONDS || 20) + ' s.');
            if (e && e.name === 'AbortError') throw e;
            throw new ApiError(0, 'network', 'Cannot reach the API at ' + base + '.');
        }
        let body = null;
        try { body = await resp.json(); } catch (e) {
            if (timedOut) throw new ApiError(0, 'timeout', 'The API did not answer in time.');
            if (e && e.name === 'AbortError') throw e;
        }
        if (!resp.ok) {
            const err = body && typeof body.error === 'object' && body.error ? body.error : {};
            const retry = parseInt(resp.headers.get('Retry-After') || '', 10);
            throw new ApiError(resp.status, String(err.code || 'http_' + resp.status),
                String(err.message || ('HTTP ' + resp.status + ' ' + resp.statusText)),
                Number.isFinite(retry) ? retry : null);
        }
        if (!body || typeof body !== 'object') {
            throw new ApiError(resp.status, 'bad_response', 'The API answered with something that is not a JSON object.');
        }
        return body;
    } finally {
        clearTimeout(timer);
    }
}

// ---- a panel's own document ------------------------------------------------------------
// For a panel that loads on its own (the shortlist, the range's zones): one request at a
// time (a newer one aborts the one in flight, whose answer is then dropped), the document
// kept in view.doc under its path in view.key (asked again: drawn, not fetched), and the
// panel's data-state "loading" | "ready" | "error". render() draws view.doc (null after a
// failure); failed(message) then says why it could not be loaded.
async function loadPanel(view, section, path, render, failed) {
    if (view.key === path && view.doc) { render(); return; }
    if (view.controller) view.controller.abort();
    const controller = view.controller = new AbortController();
    section.dataset.state = 'loading';
    try {
        const doc = await api(path, controller);
        if (controller !== view.controller) return;
        view.doc = doc;
        view.key = path;
        render();
        section.dataset.state = 'ready';
    } catch (e) {
        if (controller !== view.controller || (e && e.name === 'AbortError')) return;
        view.doc = null;
        view.key = null;
        render();
        failed(e && e.message ? e.message : 'could not be loaded.');
        section.dataset.state = 'error';
    } finally {
        if (controller === view.controller) view.controller = null;
    }
}

export {base, getToken, setToken, token, ApiError, api, loadPanel};
