// Entry point: URL state, loading with cancellation and refresh, controls.

import {$, setText, show} from './dom.js';
import {validZone, todayIn, validDate, shiftDate, timeIn} from './format.js';
import {setToken, token, ApiError, api} from './api.js';
import {state, siteInfo, siteTz, siteLabel, loadSites, viewingToday} from './state.js';
import {showLoading, showError, showUnauthorised} from './page.js';
import {render, selectZone} from './day.js';

function fillSiteSelect() {
    const select = $('site');
    const names = state.sites.map((s) => s.site_name);
    if (state.site && names.indexOf(state.site) < 0) names.push(state.site);
    const wanted = names.map((n) => n + '\u0000' + siteLabel(n)).join('\u0001') + (state.sitesLoaded ? '+' : '-');
    if (select.dataset.options !== wanted) {
        while (select.firstChild) select.removeChild(select.firstChild);
        names.forEach((n) => {
            const known = Boolean(siteInfo(n));
            const suffix = known || !state.sitesLoaded ? '' : ' (not listed)';
            select.appendChild(new Option(siteLabel(n) + suffix, n));
        });
        select.dataset.options = wanted;
    }
    if (state.site !== null) select.value = state.site;
    select.disabled = names.length === 0;
}

// ---- URL ------------------------------------------------------------------------------
function readQuery() {
    const q = new URLSearchParams(window.location.search);
    const site = q.get('site');
    if (site) state.site = site;
    const date = q.get('date');
    if (date) { state.date = date; state.dateIsDefault = false; }
    const refresh = q.get('refresh');
    if (refresh !== null && /^\d+$/.test(refresh)) state.refreshSeconds = Math.min(3600, parseInt(refresh, 10));
}
function writeQuery() {
    const q = new URLSearchParams(window.location.search);
    if (state.site) q.set('site', state.site); else q.delete('site');
    if (!state.dateIsDefault && state.date) q.set('date', state.date); else q.delete('date');
    const search = q.toString();
    const url = window.location.pathname + (search ? '?' + search : '') + window.location.hash;
    if (url !== window.location.pathname + window.location.search + window.location.hash) {
        history.replaceState(null, '', url);
    }
}


function schedule(delaySeconds) {
    clearTimeout(state.timer);
    state.timer = null;
    const delay = delaySeconds !== undefined ? delaySeconds
        : (viewingToday() && state.refreshSeconds > 0 ? state.refreshSeconds : 0);
    if (delay > 0) state.timer = setTimeout(() => { if (!document.hidden) load('refresh'); }, delay * 1000);
}

async function load(mode) {
    clearTimeout(state.timer);
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    const seq = ++state.seq;
    const site = state.site;
    if (!site) {
        showError(new ApiError(0, 'no_site', 'No site to show: /api/v1/sites listed none and CONFIG.SITE_ID is empty.'));
        return;
    }
    let date = state.date;
    if (state.dateIsDefault) {
        // Today on the site's clock; if its zone is not known yet the API picks today.
        date = todayIn(siteTz(site));
    }
    const key = site + '|' + (date || '');
    const quiet = mode === 'refresh' && state.dataKey !== null && state.dataKey === key;
    if (!quiet) showLoading(site, date);
    let retry;
    try {
        const path = '/dashboard/' + encodeURIComponent(site) + (date ? '?date=' + encodeURIComponent(date) : '');
        const data = await api(path, controller);
        if (seq !== state.seq) return;
        const meta = data.meta && typeof data.meta === 'object' ? data.meta : {};
        if (validZone(meta.timezone)) state.tzBySite.set(site, meta.timezone);
        const shown = typeof data.date === 'string' ? data.date : date;
        if (state.dateIsDefault) state.date = shown;
        state.data = data;
        state.dataKey = site + '|' + (date || shown);
        state.lastLoad = Date.now();
        $('date').value = state.date || '';
        render(data);
        writeQuery();
    } catch (e) {
        if (seq !== state.seq) return;
        if (e && e.name === 'AbortError') return;
        if (!(e instanceof ApiError)) {
            // A bug of this page, not of the API: say so instead of failing silently.
            e = new ApiError(0, 'page_error', 'The page could not show this answer: ' + (e && e.message));
        }
        if (e.status === 401 || e.status === 403) { showUnauthorised(e); return; }
        if (quiet) {
            // Keep today's numbers on screen; say that they are not fresh.
            const w = $('meta-warning');
            setText(w, 'Refresh failed at ' + timeIn(null, new Date().toISOString()) + ': ' + e.message);
            show(w, true);
        } else {
            state.data = null;
            state.dataKey = null;
            showError(e);
        }
        if (e.status === 503 && e.retryAfter) retry = Math.max(1, Math.min(e.retryAfter, 300));
    } finally {
        if (seq === state.seq) {
            state.controller = null;
            schedule(retry);
        }
    }
}


// ---- controls ----------------------------------------------------------------------------
function navigate() {
    writeQuery();
    load('navigate');
}
function bind() {
    $('site').addEventListener('change', (ev) => {
        state.site = ev.target.value;
        state.selectedZone = null;
        navigate();
    });
    $('date').addEventListener('change', (ev) => {
        const value = ev.target.value;
        if (!validDate(value)) return;  // half-typed dates wait for the rest
        const today = todayIn(siteTz(state.site));
        state.date = value;
        state.dateIsDefault = value === today;
        navigate();
    });
    const step = (days) => {
        const from = validDate(state.date) ? state.date : todayIn(siteTz(state.site));
        if (!from) return;
        const value = shiftDate(from, days);
        state.date = value;
        state.dateIsDefault = value === todayIn(siteTz(state.site));
        navigate();
    };
    $('prev-day').addEventListener('click', () => step(-1));
    $('next-day').addEventListener('click', () => step(1));
    $('today').addEventListener('click', () => { state.dateIsDefault = true; state.date = null; navigate(); });
    $('refresh').addEventListener('click', () => load('refresh'));
    $('error-retry').addEventListener('click', () => start());
    $('clear-zone').addEventListener('click', () => {
        const zone = state.selectedZone;
        selectZone(zone);
        const b = Array.from($('plan').children).find((n) => n.dataset.zone === zone);
        if (b) b.focus();
    });
    $('plan').addEventListener('keydown', (ev) => {
        if (ev.key === 'Escape' && state.selectedZone) { selectZone(state.selectedZone); }
    });
    $('auth-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const value = $('token').value.trim();
        if (!value) return;
        $('token').value = '';
        setToken(value);
        start();
    });
    $('forget-token').addEventListener('click', () => { setToken(''); start(); });
    document.addEventListener('visibilitychange', () => {
        if (document.hidden || !state.data || !viewingToday() || state.refreshSeconds <= 0) return;
        if (Date.now() - state.lastLoad >= state.refreshSeconds * 1000) load('refresh');
    });
}

async function start() {
    clearTimeout(state.timer);
    show($('forget-token'), Boolean(token()));
    showLoading(state.site || 'sites', null);
    try {
        await loadSites();
    } catch (e) {
        if (e.status === 401 || e.status === 403) { fillSiteSelect(); showUnauthorised(e); return; }
        throw e;
    }
    if (!state.site) {
        state.site = CONFIG.SITE_ID || (state.sites[0] && state.sites[0].site_name) || null;
    }
    fillSiteSelect();
    if (!state.dateIsDefault) $('date').value = validDate(state.date) ? state.date : '';
    await load('navigate');
}

readQuery();
bind();
start();

