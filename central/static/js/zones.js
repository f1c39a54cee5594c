// The range view's Zones table, from GET /api/v1/zones/{site}: per zone, capacity and
// peak, p95 and mean utilisation in the chosen hours, occupied share and hours over 80 %;
// sortable, a "never above N %" filter and a working-hours toggle (the site's working_hours
// and working_days as the API gives them; 09:00-18:00, Mon-Fri where the sites file has none).
// It builds its own panel after the range's totals and loads on its own (range.js calls
// mountZones after each render), so the range view's ready state does not wait for it:
// the panel says data-state="loading" | "ready" | "error".

import {$, el, setText, setAttr, show, keyed} from './dom.js';
import {num, fmt} from './format.js';
import {loadPanel} from './api.js';

const DEFAULT_WORKING = {hours: '09:00-18:00', weekdays: ['mon', 'tue', 'wed', 'thu', 'fri']};
const DAY_NAMES = {mon: 'Mon', tue: 'Tue', wed: 'Wed', thu: 'Thu', fri: 'Fri', sat: 'Sat', sun: 'Sun'};
const COLUMNS = [
    // key, header, value for sorting (null sorts last), text
    ['zone', 'Zone', (z) => z.display_name, null],
    ['capacity', 'Capacity', (z) => z.capacity, (z) => z.capacity === null ? '\u2013' : fmt(z.capacity)],
    ['peak_utilisation', 'Peak %', (z) => z.peak_utilisation, (z) => share(z, z.peak_utilisation)],
    ['p95_utilisation', 'P95 %', (z) => z.p95_utilisation, (z) => share(z, z.p95_utilisation)],
    ['mean_utilisation', 'Mean %', (z) => z.mean_utilisation, (z) => share(z, z.mean_utilisation)],
    ['occupied_share', 'Occupied', (z) => z.occupied_share, (z) => share(z, z.occupied_share, true)],
    ['hours_over_80', 'Hours over 80 %', (z) => (z.hours_over ? z.hours_over['80'] : null),
        (z) => (z.hours_over ? fmt(z.hours_over['80']) : '\u2013')]
];

const view = {key: null, doc: null, controller: null, sort: {key: 'p95_utilisation', descending: true},
    working: false, never: false, limit: 40, workingHours: {}};

// The site's working hours: from its last zones document (the API reads the sites file).
function workingOf(site) {
    return view.workingHours[site] || DEFAULT_WORKING;
}

function workingLabel(w) {
    return ' Working hours (' + w.hours.replace('-', '\u2013') + ', ' + w.weekdays.map((d) => DAY_NAMES[d]).join(' ') + ')';
}

function share(z, value, always) {
    if (z.hours_with_data === 0) return 'no data';
    if (value === null || value === undefined) return always ? 'no data' : '\u2013';
    return Math.round(num(value) * 100) + ' %';
}

// The range view of one zone (main.js reads ?zone= in the range view).
function zoneRangeHref(site, zone, from, to) {
    return window.location.pathname + '?view=range&site=' + encodeURIComponent(site) + '&from=' + from + '&to=' + to +
        '&zone=' + encodeURIComponent(zone);
}

function panel() {
    let section = $('range-zones-panel');
    if (section) return section;
    section = el('section', 'panel wide');
    section.id = 'range-zones-panel';
    section.setAttribute('aria-labelledby', 'range-zones-title');
    section.appendChild(el('h3', null, 'Zones')).id = 'range-zones-title';
    const controls = section.appendChild(el('div', 'zones-controls'));
    const working = controls.appendChild(el('label', 'check'));
    const box = working.appendChild(el('input'));
    box.type = 'checkbox';
    box.id = 'range-zones-working';
    working.appendChild(el('span', null, workingLabel(DEFAULT_WORKING))).id = 'range-zones-working-label';
    const never = controls.appendChild(el('label', 'check'));
    const neverBox = never.appendChild(el('input'));
    neverBox.type = 'checkbox';
    neverBox.id = 'range-zones-never';
    never.appendChild(document.createTextNode(' Only zones never above '));
    const limit = never.appendChild(el('input'));
    limit.type = 'number';
    limit.id = 'range-zones-limit';
    limit.min = '1';
    limit.max = '500';
    limit.value = String(view.limit);
    limit.setAttribute('aria-label', 'percent of capacity');
    limit.style.width = '4.5rem';
    never.appendChild(document.createTextNode(' %'));
    const scroll = section.appendChild(el('div', 'table-scroll'));
    scroll.tabIndex = 0;
    scroll.setAttribute('role', 'region');
    scroll.setAttribute('aria-labelledby', 'range-zones-title');
    const table = scroll.appendChild(el('table', 'days'));
    table.id = 'range-zones-table';
    const tr = table.appendChild(el('thead')).appendChild(el('tr'));
    tr.id = 'range-zones-head';
    COLUMNS.forEach((c) => {
        const th = tr.appendChild(el('th', c[0] === 'zone' ? null : 'num'));
        th.scope = 'col';
        th.dataset.key = c[0];
        const b = th.appendChild(el('button', 'sort', c[1]));
        b.type = 'button';
        b.addEventListener('click', () => sortBy(c[0]));
    });
    table.appendChild(el('tbody')).id = 'range-zones-body';
    section.appendChild(el('p', 'muted')).id = 'range-zones-note';
    box.addEventListener('change', () => { view.working = box.checked; load(view.site, view.from, view.to); });
    neverBox.addEventListener('change', () => { view.never = neverBox.checked; render(); });
    limit.addEventListener('input', () => {
        const n = parseInt(limit.value, 10);
        if (Number.isFinite(n) && n > 0) { view.limit = n; render(); }
    });
    // After the totals: the planner's table comes before the day-by-day detail.
    const totals = $('range-totals');
    const after = totals ? totals.closest('section') : null;
    if (after && after.parentNode) after.parentNode.insertBefore(section, after.nextSibling);
    else $('range').appendChild(section);
    return section;
}

function sortBy(key) {
    view.sort = {key: key, descending: view.sort.key === key ? !view.sort.descending : key !== 'zone'};
    render();
    const b = document.querySelector('#range-zones-head th[data-key="' + key + '"] button');
    if (b) b.focus();
}

function sorted(zones) {
    const col = COLUMNS.find((c) => c[0] === view.sort.key) || COLUMNS[0];
    const sign = view.sort.descending ? -1 : 1;
    return zones.slice().sort((a, b) => {
        const x = col[2](a);
        const y = col[2](b);
        if (x === null || x === undefined) return y === null || y === undefined ? a.zone.localeCompare(b.zone) : 1;
        if (y === null || y === undefined) return -1;
        const d = typeof x === 'string' ? x.localeCompare(y) : x - y;
        return d ? sign * d : a.zone.localeCompare(b.zone);
    });
}

// "Never above N %": zones with a capacity and data whose peak stayed at or below N %.
function kept(z) {
    if (!view.never) return true;
    return z.peak_utilisation !== null && z.peak_utilisation !== undefined && num(z.peak_utilisation) * 100 <= view.limit;
}

function render() {
    const section = panel();
    const doc = view.doc;
    const zones = doc && Array.isArray(doc.zones) ? sorted(doc.zones.filter(kept)) : [];
    if (doc && doc.working_hours && doc.site_name) {
        view.workingHours[doc.site_name] = doc.working_hours;
        setText($('range-zones-working-label'), workingLabel(doc.working_hours));
    }
    document.querySelectorAll('#range-zones-head th').forEach((th) => {
        setAttr(th, 'aria-sort', th.dataset.key === view.sort.key ? (view.sort.descending ? 'descending' : 'ascending') : null);
    });
    const rows = keyed($('range-zones-body'), zones.map((z) => z.zone), () => {
        const tr = el('tr');
        tr.appendChild(el('th')).scope = 'row';
        tr.firstChild.appendChild(el('a', 'zone-link'));
        for (let i = 1; i < COLUMNS.length; i++) tr.appendChild(el('td', 'num'));
        return tr;
    });
    rows.forEach((tr, i) => {
        const z = zones[i];
        tr.dataset.zone = z.zone;
        ['peak_utilisation', 'p95_utilisation', 'mean_utilisation', 'occupied_share'].forEach((k) => {
            tr.dataset[k.replace(/_(\w)/g, (m, c) => c.toUpperCase())] = z[k] === null ? '' : String(z[k]);
        });
        // The zone's name links to the range for that zone (history with zone=).
        setText(tr.firstChild.firstChild, z.display_name);
        setAttr(tr.firstChild.firstChild, 'href', zoneRangeHref(view.site, z.zone, view.from, view.to));
        setAttr(tr.firstChild, 'title', z.display_name === z.zone ? null : z.zone);
        COLUMNS.slice(1).forEach((c, j) => setText(tr.children[j + 1], c[3](z)));
    });
    setText($('range-zones-note'), doc ? (zones.length ? '' : 'No zone matches. ') + 'Hours with data: ' +
        fmt(doc.zones.length ? doc.zones[0].hours_with_data : 0) + ' of ' +
        fmt(doc.zones.length ? doc.zones[0].hours_in_range : 0) + (view.working ? ' working hours' : ' hours') +
        '. Percentiles over the hourly peaks of the hours with data; utilisation over each zone\u2019s capacity.' : '');
    show(section, true);
}

function load(site, from, to) {
    const section = panel();
    view.site = site;
    view.from = from;
    view.to = to;
    const w = workingOf(site);
    const path = '/zones/' + encodeURIComponent(site) + '?from=' + from + '&to=' + to +
        (view.working ? '&hours=' + w.hours + '&weekdays=' + w.weekdays.join(',') : '');
    return loadPanel(view, section, path, render, (message) => setText($('range-zones-note'), 'Zones: ' + message));
}

// Called by range.js after each render of the range view.
function mountZones(site, from, to) {
    if (site && from && to) load(site, from, to);
}

export {mountZones, zoneRangeHref};
