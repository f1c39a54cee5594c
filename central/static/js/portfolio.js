// The portfolio view: every site's day from GET /api/v1/overview in one sortable table.

import {$, el, setText, setAttr, keyed} from './dom.js';
import {num, fmt, pad2, hourRange, dateTimeIn} from './format.js';
import {state} from './state.js';
import {portfolioCells} from './typical.js';

// column key -> [heading, numeric]; the keys are the overview's own field names.
const COLUMNS = [
    ['display_name', 'Site', false],
    ['utilisation', 'Utilisation', true],
    ['peak', 'Peak', true],
    ['events', 'Events', true],
    ['critical_events', 'Critical', true],
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

function renderPortfolio(doc, onSort, siteHref) {
    const rows = sortRows(Array.isArray(doc.sites) ? doc.sites.filter((r) => r && r.site_name) : [],
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
        for (let i = 1; i < COLUMNS.length; i++) tr.appendChild(el('td', COLUMNS[i][2] ? 'num' : null));
        const bar = el('span', 'u-bar');
        bar.setAttribute('aria-hidden', 'true');
        bar.appendChild(el('span'));
        cell(tr, 1).appendChild(el('span', 'u-text'));
        cell(tr, 1).appendChild(bar);
        return tr;
    });
    trs.forEach((tr, i) => {
        const r = rows[i];
        const a = tr.firstChild.firstChild;
        setText(a, r.display_name || r.site_name);
        setAttr(a, 'href', siteHref(r.site_name));
        setText(tr.firstChild.lastChild, r.display_name && r.display_name !== r.site_name ? r.site_name : '');
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
        setText(cell(tr, 5), r.busiest_zone || '\u2013');
        const hour = Number.isInteger(r.busiest_hour) ? r.busiest_hour : null;
        setText(cell(tr, 6), hour === null ? '\u2013' : pad2(hour) + ':00');
        setAttr(cell(tr, 6), 'title', hour === null ? null : hourRange(hour));
        const d = r.devices || {};
        const online = num(d.online), offline = num(d.offline);
        setText(cell(tr, 7), online + offline === 0 ? 'none' : online + ' on' + (offline ? ', ' + offline + ' off' : ''));
        cell(tr, 7).classList.toggle('alert', offline > 0);
        setAttr(cell(tr, 7), 'title', d.last_seen ? 'Last seen ' + dateTimeIn(r.timezone, d.last_seen) : null);
        tr.dataset.offline = String(offline);
        setText(cell(tr, 8), r.coverage === null || r.coverage === undefined ? 'n/a' : percent(r.coverage));
        portfolioCells(tr, r, cell(tr, 9), cell(tr, 10));
    });
    return rows.length === 0 ? 'empty' : 'ready';
}

export {COLUMNS, sortRows, renderPortfolio};
