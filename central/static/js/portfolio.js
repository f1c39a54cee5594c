// The portfolio view: every site's day from GET /api/v1/overview in one sortable table,
// with each site's alerts of that day (GET /api/v1/alerts, counted by the alert's local date).

import {$, el, setText, setAttr, keyed, labelCells} from './dom.js';
import {num, fmt, pad2, hourRange, dateTimeIn, shiftDate} from './format.js';
import {state, zoneName} from './state.js';
import {portfolioCells} from './typical.js';

// column key -> [heading, numeric]; the keys are the overview's own field names.
const COLUMNS = [
    ['display_name', 'Site', false],
    ['utilisation', 'Utilisation', true],
    ['peak', 'Peak', true],
    ['events', 'Events', true],
    ['critical_events', 'Critical', true],
    ['alerts', 'Alerts', true],
    ['busiest_zone', 'Busiest zone', false],
    ['busiest_hour', 'Busiest hour', true],
    ['devices', 'Devices', true],
    ['coverage', 'Coverage', true],
    ['now_peak', 'Now', true],
    ['vs_typical', 'vs typical', true]
];

function sortValue(row, key) {
    if (key === 'devices') return row.devices ? num(row.devices.offline) : null;
    const v = row[key];
    if (key === 'display_name') return String(v || row.site_name);
    return v === null || v === undefined ? null : v;
}

// The overview's rule: rows without a value last either way, ties by site name.
function sortRows(rows, key, descending) {
    return rows.slice().sort((a, b) => {
        const va = sortValue(a, key), vb = sortValue(b, key);
        if (va === null || vb === null) {
            if (va !== vb) return va === null ? 1 : -1;
        } else if (va !== vb) {
            const c = typeof va === 'number' && typeof vb === 'number' ? va - vb : String(va).localeCompare(String(vb));
            if (c) return descending ? -c : c;
        }
        return a.site_name < b.site_name ? -1 : a.site_name > b.site_name ? 1 : 0;
    });
}

function percent(share) {
    return share === null || share === undefined || !Number.isFinite(Number(share)) ? '\u2013'
        : Math.round(Number(share) * 100) + ' %';
}

function renderHead(onSort) {
    const head = $('portfolio-head');
    if (!head.children.length) {
        COLUMNS.forEach((c) => {
            const th = el('th');
            th.scope = 'col';
            th.dataset.key = c[0];
            if (c[2]) th.className = 'num';
            const b = th.appendChild(el('button', 'sort', c[1]));
            b.type = 'button';
            b.addEventListener('click', () => onSort(c[0]));
            head.appendChild(th);
        });
    }
    Array.from(head.children).forEach((th) => {
        const on = th.dataset.key === state.sort.key;
        setAttr(th, 'aria-sort', on ? (state.sort.descending ? 'descending' : 'ascending') : null);
    });
}

function cell(tr, i) { return tr.children[i]; }
const col = (key) => COLUMNS.findIndex((c) => c[0] === key);

// Alerts per site on that site's day shown: local_time's date is the site's local date.
// null where the alerts could not be read (the column then says so, the table stays).
function alertCounts(rows, alerts) {
    if (!alerts) return null;
    const day = new Map(rows.map((r) => [r.site_name, r.date]));
    const counts = new Map();
    alerts.forEach((a) => {
        if (!a || typeof a.local_time !== 'string' || day.get(a.site_name) !== a.local_time.slice(0, 10)) return;
        counts.set(a.site_name, (counts.get(a.site_name) || 0) + 1);
    });
    return counts;
}

function renderPortfolio(doc, alerts, onSort, siteHref) {
    const listed = Array.isArray(doc.sites) ? doc.sites.filter((r) => r && r.site_name) : [];
    const counts = alertCounts(listed, alerts);
    const rows = sortRows(listed.map((r) => Object.assign({}, r, {alerts: counts ? counts.get(r.site_name) || 0 : null})),
        state.sort.key, state.sort.descending);
    renderHead(onSort);
    const dates = new Set(rows.map((r) => r.date));
    setText($('portfolio-day'), doc.date ? 'Day ' + doc.date
        : (dates.size === 1 ? 'Today (' + Array.from(dates)[0] + ')' : 'Today at each site'));
    setText($('portfolio-count'), rows.length + (rows.length === 1 ? ' site' : ' sites'));
    const body = $('portfolio-body');
    const trs = keyed(body, rows.map((r) => r.site_name), (name) => {
        const tr = el('tr');
        tr.dataset.site = name;
        const th = tr.appendChild(el('th'));
        th.scope = 'row';
        th.appendChild(el('a', 'site-link'));
        th.appendChild(el('span', 'muted site-code'));
        th.appendChild(document.createTextNode(' '));
        th.appendChild(el('a', 'zones-link', 'Zones'));
        for (let i = 1; i < COLUMNS.length; i++) tr.appendChild(el('td', COLUMNS[i][2] ? 'num' : null));
        const bar = el('span', 'u-bar');
        bar.setAttribute('aria-hidden', 'true');
        bar.appendChild(el('span'));
        cell(tr, 1).appendChild(el('span', 'u-text'));
        cell(tr, 1).appendChild(bar);
        cell(tr, col('alerts')).appendChild(el('a', 'alerts-link'));
        return tr;
    });
    trs.forEach((tr, i) => {
        const r = rows[i];
        const a = tr.firstChild.firstChild;
        setText(a, r.display_name || r.site_name);
        setAttr(a, 'href', siteHref(r.site_name));
        setText(tr.firstChild.querySelector('.site-code'), r.display_name && r.display_name !== r.site_name ? r.site_name : '');
        // The site's zones table: the range view of the 7 days ending on the site's day.
        const zones = tr.firstChild.querySelector('.zones-link');
        setAttr(zones, 'href', r.date ? window.location.pathname + '?view=range&site=' + encodeURIComponent(r.site_name) +
            '&from=' + shiftDate(r.date, -6) + '&to=' + r.date + '#range-zones-panel' : null);
        setAttr(zones, 'aria-label', 'Zones of ' + (r.display_name || r.site_name));
        const u = r.utilisation === null || r.utilisation === undefined ? null : num(r.utilisation);
        setText(cell(tr, 1).querySelector('.u-text'), percent(u));
        const fill = cell(tr, 1).querySelector('.u-bar span');
        fill.style.width = (u === null ? 0 : Math.min(100, Math.round(u * 100))) + '%';
        fill.className = u === null ? '' : u >= 1 ? 'over' : u >= 0.8 ? 'near' : '';
        tr.dataset.utilisation = u === null ? '' : String(u);
        setText(cell(tr, 2), r.peak === null || r.peak === undefined ? '\u2013' : fmt(r.peak));
        tr.dataset.peak = r.peak === null || r.peak === undefined ? '' : String(num(r.peak));
        setText(cell(tr, 3), fmt(r.events));
        tr.dataset.events = String(num(r.events));
        const crit = num(r.critical_events);
        setText(cell(tr, 4), fmt(crit));
        cell(tr, 4).classList.toggle('alert', crit > 0);
        tr.dataset.critical = String(crit);
        // The alerts of the site's day, linked to that day's alerts panel.
        const link = cell(tr, col('alerts')).firstChild;
        setText(link, r.alerts === null ? '\u2013' : fmt(r.alerts));
        setAttr(link, 'href', r.alerts ? siteHref(r.site_name) + '#alerts-panel' : null);
        setAttr(link, 'title', r.alerts === null ? 'Alerts could not be read' : null);
        cell(tr, col('alerts')).classList.toggle('alert', Boolean(r.alerts));
        tr.dataset.alerts = r.alerts === null ? '' : String(r.alerts);
        const zone = cell(tr, col('busiest_zone'));
        setText(zone, r.busiest_zone ? zoneName(r.site_name, r.busiest_zone, null) : '\u2013');
        setAttr(zone, 'title', r.busiest_zone || null);
        const hourCell = cell(tr, col('busiest_hour'));
        const hour = Number.isInteger(r.busiest_hour) ? r.busiest_hour : null;
        setText(hourCell, hour === null ? '\u2013' : pad2(hour) + ':00');
        setAttr(hourCell, 'title', hour === null ? null : hourRange(hour));
        const devices = cell(tr, col('devices'));
        const d = r.devices || {};
        const online = num(d.online), offline = num(d.offline);
        setText(devices, online + offline === 0 ? 'none' : online + ' on' + (offline ? ', ' + offline + ' off' : ''));
        devices.classList.toggle('alert', offline > 0);
        setAttr(devices, 'title', d.last_seen ? 'Last seen ' + dateTimeIn(r.timezone, d.last_seen) : null);
        tr.dataset.offline = String(offline);
        setText(cell(tr, col('coverage')), r.coverage === null || r.coverage === undefined ? 'n/a' : percent(r.coverage));
        portfolioCells(tr, r, cell(tr, col('now_peak')), cell(tr, col('vs_typical')));
    });
    labelCells($('portfolio-table'));
    return rows.length === 0 ? 'empty' : 'ready';
}

export {COLUMNS, sortRows, renderPortfolio};
