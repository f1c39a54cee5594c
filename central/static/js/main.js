// Entry point: URL state, loading with cancellation and refresh, controls.

import {$, setText, show} from './dom.js';
import {validZone, todayIn, validDate, shiftDate, timeIn} from './format.js';
import {setToken, token, ApiError, api} from './api.js';
import {state, siteInfo, siteTz, siteLabel, loadSites, viewingToday} from './state.js';
import {main, setState, showLoading, showError, showUnauthorised} from './page.js';
import {render, selectZone, onRedraw} from './day.js';
import {renderPortfolio} from './portfolio.js';
import {mountShortlist} from './shortlist.js';
import {renderRange} from './range.js';
import {exportShown} from './export.js';
import {loadAlerts} from './alerts.js';

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
    // A long name may still be cut by the control's width: the tooltip has all of it.
    select.title = state.site ? siteLabel(state.site) : '';
    select.disabled = names.length === 0;
}

// ---- URL ------------------------------------------------------------------------------
function readQuery() {
    const q = new URLSearchParams(window.location.search);
    const site = q.get('site');
    if (site) state.site = site;
    const date = q.get('date');
    if (date) { state.date = date; state.dateIsDefault = false; }
    const view = q.get('view');
    if (VIEWS.indexOf(view) >= 0) state.view = view;
    const from = q.get('from'), to = q.get('to');
    if (validDate(from) && validDate(to) && from <= to) { state.from = from; state.to = to; }
    state.compare = q.get('compare') === 'previous';
    const zone = q.get('zone');
    state.rangeZone = zone && /^[A-Za-z0-9_.-]{1,64}$/.test(zone) ? zone : null;
    const sort = q.get('sort');
    if (sort && /^-?[a-z_]+$/.test(sort)) state.sort = {key: sort.replace(/^-/, ''), descending: sort[0] === '-'};
    const refresh = q.get('refresh');
    if (refresh !== null && /^\d+$/.test(refresh)) state.refreshSeconds = Math.min(3600, parseInt(refresh, 10));
}
const VIEWS = ['day', 'range', 'portfolio'];

function writeQuery() {
    const q = new URLSearchParams(window.location.search);
    if (state.site) q.set('site', state.site); else q.delete('site');
    if (!state.dateIsDefault && state.date && state.view !== 'range') q.set('date', state.date); else q.delete('date');
    if (state.view !== 'day') q.set('view', state.view); else q.delete('view');
    if (state.view === 'range' && state.from) { q.set('from', state.from); q.set('to', state.to); } else { q.delete('from'); q.delete('to'); }
    if (state.view === 'range' && state.compare) q.set('compare', 'previous'); else q.delete('compare');
    if (state.view === 'range' && state.rangeZone) q.set('zone', state.rangeZone); else q.delete('zone');
    if (state.view === 'portfolio') q.set('sort', (state.sort.descending ? '-' : '') + state.sort.key); else q.delete('sort');
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

// ---- the one state -> render step ------------------------------------------------------
// state -> plan() (what the view needs: its key and its requests) -> load() fetches into
// state.data -> draw() renders state.data for the view and sets the page state. A refresh
// of the same key updates in place; selecting a zone, an hour or a sort only draws again.
function plan() {
    const noSite = new ApiError(0, 'no_site', 'No site to show: /api/v1/sites listed none and CONFIG.SITE_ID is empty.');
    if (state.view === 'portfolio') {
        const date = !state.dateIsDefault && validDate(state.date) ? state.date : null;
        return {key: 'portfolio|' + (date || ''), what: 'all sites', when: state.date, refreshes: state.dateIsDefault,
            fetch: (c) => fetchPortfolio(date, c)};
    }
    if (!state.site) return {error: noSite};
    const site = encodeURIComponent(state.site);
    if (state.view === 'range') {
        ensureRange();
        const path = '/history/' + site + '?from=' + state.from + '&to=' + state.to + '&bucket=day' +
            (state.compare ? '&compare=previous' : '') + (state.rangeZone ? '&zone=' + encodeURIComponent(state.rangeZone) : '');
        const profilePath = '/profile/' + site + '?weeks=8&end=' + state.to;
        return {key: 'range|' + state.site + '|' + state.from + '|' + state.to + '|' + state.compare + '|' + (state.rangeZone || ''),
            what: state.site, when: state.from + ' to ' + state.to, refreshes: false,
            fetch: (c) => Promise.all([api(path, c), api(profilePath, c)]).then((b) => ({history: b[0], profile: b[1]}))};
    }
    // Today on the site's clock; if its zone is not known yet the API picks today.
    const date = state.dateIsDefault ? todayIn(siteTz(state.site)) : state.date;
    return {key: 'day|' + state.site + '|' + (date || ''), what: state.site, when: date, refreshes: true,
        fetch: (c) => api('/dashboard/' + site + (date ? '?date=' + encodeURIComponent(date) : ''), c)};
}

// The overview, and the alerts of the days it shows (counted per site; never fails it).
async function fetchPortfolio(date, controller) {
    const around = date || todayIn('UTC');
    // Bare dates are 00:00 UTC: a day either side holds every site's local day.
    const alertsPath = '/alerts?from=' + shiftDate(around, -1) + '&to=' + shiftDate(around, 2) + '&limit=10000';
    const both = await Promise.all([api('/overview' + (date ? '?date=' + date : ''), controller),
        api(alertsPath, controller).catch((e) => { if (e && e.name === 'AbortError') throw e; return null; })]);
    return {overview: both[0], alerts: both[1] && Array.isArray(both[1].alerts) ? both[1].alerts : null};
}

// What the day's answer teaches the page: the site's zone, and "today"'s date.
function adoptDay(data, p) {
    const meta = data.meta && typeof data.meta === 'object' ? data.meta : {};
    if (validZone(meta.timezone)) state.tzBySite.set(state.site, meta.timezone);
    const shown = typeof data.date === 'string' ? data.date : p.when;
    if (state.dateIsDefault) state.date = shown;
    const key = 'day|' + state.site + '|' + (p.when || shown);
    if (state.dataKey !== key) state.selectedHour = null;
    $('date').value = state.date || '';
    return key;
}

function draw() {
    const data = state.data;
    let outcome, site = state.site, date;
    if (state.view === 'day') {
        outcome = render(data);
        date = state.date || '';
    } else if (state.view === 'portfolio') {
        outcome = renderPortfolio(data.overview, data.alerts, sortBy, siteHref);
        mountShortlist(data.overview);  // loads on its own (shortlist.js)
        site = '';
        date = state.dateIsDefault ? '' : state.date;
    } else {
        outcome = renderRange(data.history, data.profile);
        date = state.from + '/' + state.to;
    }
    state.renders += 1;
    main.dataset.renders = String(state.renders);
    main.dataset.view = state.view;
    main.dataset.site = site || '';
    main.dataset.date = date || '';
    setState(outcome);
}

async function load(mode) {
    clearTimeout(state.timer);
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    const seq = ++state.seq;
    syncControls();
    const p = plan();
    if (p.error) { showError(p.error); return; }
    const quiet = mode === 'refresh' && state.dataKey !== null && state.dataKey === p.key;
    if (!quiet) showLoading(p.what, p.when);
    let retry;
    try {
        const data = await p.fetch(controller);
        if (seq !== state.seq) return;
        state.data = data;
        state.dataKey = state.view === 'day' ? adoptDay(data, p) : p.key;
        state.lastLoad = Date.now();
        syncControls();
        draw();
        writeQuery();
        if (state.view === 'day') {
            // The alerts panel follows on its own request; it never holds back or fails the day.
            const meta = data.meta && typeof data.meta === 'object' ? data.meta : {};
            loadAlerts(state.site, meta, validZone(meta.timezone) ? meta.timezone : siteTz(state.site), controller, seq);
        }
    } catch (e) {
        if (seq !== state.seq) return;
        if (e && e.name === 'AbortError') return;
        if (!(e instanceof ApiError)) {
            // A bug of this page, not of the API: say so instead of failing silently.
            e = new ApiError(0, 'page_error', 'The page could not show this answer: ' + (e && e.message));
        }
        if (e.status === 401 || e.status === 403) { showUnauthorised(e); return; }
        if (quiet && state.view === 'day') {
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
            // Today's day and all-sites views refresh themselves; a range does not.
            if (p.refreshes) schedule(retry);
        }
    }
}

// The range defaults to the 7 days ending on the day shown (or today at the site).
function ensureRange() {
    if (state.from && state.to) return;
    // The browser's own today when the site's zone is not known (an unlisted site).
    const end = (!state.dateIsDefault && validDate(state.date)) ? state.date
        : todayIn(siteTz(state.site)) || todayIn(Intl.DateTimeFormat().resolvedOptions().timeZone);
    if (!end) return;
    state.to = end;
    state.from = shiftDate(end, -6);
}

function sortBy(key) {
    state.sort = {key: key, descending: state.sort.key === key ? !state.sort.descending : key !== 'display_name' && key !== 'busiest_zone'};
    if (state.data && state.view === 'portfolio') {
        draw();
        writeQuery();
        const th = document.querySelector('#portfolio-head th[data-key="' + key + '"] button');
        if (th) th.focus();
    }
}
function siteHref(name) {
    return window.location.pathname + '?site=' + encodeURIComponent(name) +
        (!state.dateIsDefault && state.date ? '&date=' + state.date : '');
}

// Controls follow the view: the day picker for day and portfolio, from/to for the range.
function syncControls() {
    document.querySelectorAll('.view-tab').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.view === state.view)));
    const range = state.view === 'range';
    show(document.querySelector('.range-only'), range);
    show($('date').parentElement, !range);
    show($('site').parentElement, state.view !== 'portfolio');
    show($('export'), state.view !== 'portfolio');
    if (range) {
        $('range-from').value = state.from || '';
        $('range-to').value = state.to || '';
        $('range-compare').checked = state.compare;
    }
    main.dataset.view = state.view;
}

function setView(view) {
    if (view === state.view) return;
    state.view = view;
    state.data = null;
    state.dataKey = null;
    navigate();
}

// ---- controls ----------------------------------------------------------------------------
function navigate() {
    writeQuery();
    load('navigate');
}
function bind() {
    $('site').addEventListener('change', (ev) => {
        state.site = ev.target.value;
        ev.target.title = siteLabel(state.site);
        state.selectedZone = null;
        state.rangeZone = null;
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
    document.querySelectorAll('.view-tab').forEach((b) => b.addEventListener('click', () => setView(b.dataset.view)));
    const setRange = (from, to) => {
        if (!validDate(from) || !validDate(to)) return;  // half-typed dates wait for the rest
        if (from > to) { const x = from; from = to; to = x; }
        state.from = from;
        state.to = to;
        navigate();
    };
    $('range-from').addEventListener('change', (ev) => setRange(ev.target.value, state.to || ev.target.value));
    $('range-to').addEventListener('change', (ev) => setRange(state.from || ev.target.value, ev.target.value));
    const lastDays = (n) => {
        const end = validDate(state.to) ? state.to : todayIn(siteTz(state.site));
        if (end) setRange(shiftDate(end, 1 - n), end);
    };
    $('range-7').addEventListener('click', () => lastDays(7));
    $('range-31').addEventListener('click', () => lastDays(31));
    $('range-compare').addEventListener('change', (ev) => { state.compare = ev.target.checked; navigate(); });
    $('export').addEventListener('click', () => exportShown());
    $('portfolio-body').addEventListener('click', (ev) => {
        const a = ev.target.closest('a.site-link');
        if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
        ev.preventDefault();
        state.site = a.closest('tr').dataset.site;
        state.selectedZone = null;
        state.view = 'day';
        state.data = null;
        state.dataKey = null;
        fillSiteSelect();
        navigate();
    });
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
    // The portfolio needs nothing from /api/v1/sites: both requests go out at once.
    if (state.view === 'portfolio') load('navigate');
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
    if (state.view !== 'portfolio') await load('navigate');
    else if (state.data) draw();  // the overview came first: now with the sites' zone names
}

readQuery();
bind();
onRedraw(() => { if (state.data && state.view === 'day') draw(); });
start();

