// The space planner's shortlist on All sites: every site's zones over the 7 days ending on
// the day shown, from one GET /api/v1/zones?from&to, sorted by p95 utilisation (zones
// without a capacity last). It builds its own panel at the end of the portfolio and loads
// on its own (main.js calls mountShortlist after each render of All sites), so the view's
// ready state does not wait for it: the panel says data-state="loading" | "ready" | "error".

import {$, el, setText, setAttr, show, keyed, labelCells} from './dom.js';
import {num, fmt, shiftDate} from './format.js';
import {loadPanel} from './api.js';
import {zoneRangeHref} from './zones.js';

const SHOWN = 50;  // the shortlist: the busiest zones, not all of a large portfolio's
const COLUMNS = [
    ['site', 'Site'], ['capacity', 'Capacity'], ['p95_utilisation', 'P95 %'], ['peak_utilisation', 'Peak %'],
    ['mean_utilisation', 'Mean %'], ['occupied_share', 'Occupied'], ['hours_over_80', 'Hours over 80 %']
];
const view = {key: null, doc: null, controller: null, from: null, to: null};

function share(z, value) {
    if (z.hours_with_data === 0) return 'no data';
    return value === null || value === undefined ? '\u2013' : Math.round(num(value) * 100) + ' %';
}

// p95 utilisation, highest first; zones without one last, by site then zone.
function byP95(a, b) {
    const x = a.p95_utilisation, y = b.p95_utilisation;
    const xn = x === null || x === undefined, yn = y === null || y === undefined;
    if (xn !== yn) return xn ? 1 : -1;
    if (!xn && x !== y) return y - x;
    return a.site_name.localeCompare(b.site_name) || a.zone.localeCompare(b.zone);
}

function panel() {
    let section = $('shortlist-panel');
    if (section) return section;
    section = el('section', 'shortlist');
    section.id = 'shortlist-panel';
    section.setAttribute('aria-labelledby', 'shortlist-title');
    section.appendChild(el('h3', null, 'Zones across sites')).id = 'shortlist-title';
    section.appendChild(el('p', 'muted')).id = 'shortlist-span';
    const scroll = section.appendChild(el('div', 'table-scroll'));
    scroll.tabIndex = 0;
    scroll.setAttribute('role', 'region');
    scroll.setAttribute('aria-labelledby', 'shortlist-title');
    const table = scroll.appendChild(el('table', 'sites'));
    table.id = 'shortlist-table';
    const tr = table.appendChild(el('thead')).appendChild(el('tr'));
    const zone = tr.appendChild(el('th', null, 'Zone'));
    zone.scope = 'col';
    COLUMNS.forEach((c) => {
        const th = tr.appendChild(el('th', c[0] === 'site' ? null : 'num', c[1]));
        th.scope = 'col';
        th.dataset.key = c[0];
        if (c[0] === 'p95_utilisation') th.setAttribute('aria-sort', 'descending');
    });
    table.appendChild(el('tbody')).id = 'shortlist-body';
    $('portfolio').appendChild(section);
    return section;
}

function render() {
    panel();
    const doc = view.doc;
    const all = doc && Array.isArray(doc.zones) ? doc.zones.filter((z) => z && z.site_name && z.zone).sort(byP95) : [];
    const zones = all.slice(0, SHOWN);
    const rows = keyed($('shortlist-body'), zones.map((z) => z.site_name + '\u0000' + z.zone), () => {
        const tr = el('tr');
        tr.appendChild(el('th')).scope = 'row';
        tr.firstChild.appendChild(el('a', 'zone-link'));
        COLUMNS.forEach((c) => tr.appendChild(el('td', c[0] === 'site' ? null : 'num')));
        return tr;
    });
    rows.forEach((tr, i) => {
        const z = zones[i];
        tr.dataset.site = z.site_name;
        tr.dataset.zone = z.zone;
        tr.dataset.p95Utilisation = z.p95_utilisation === null || z.p95_utilisation === undefined ? '' : String(z.p95_utilisation);
        const a = tr.firstChild.firstChild;
        setText(a, z.display_name || z.zone);
        setAttr(a, 'href', zoneRangeHref(z.site_name, z.zone, view.from, view.to));
        setAttr(tr.firstChild, 'title', z.display_name && z.display_name !== z.zone ? z.zone : null);
        const cells = [z.site_name, z.capacity === null ? '\u2013' : fmt(z.capacity), share(z, z.p95_utilisation),
            share(z, z.peak_utilisation), share(z, z.mean_utilisation), share(z, z.occupied_share),
            z.hours_over ? fmt(z.hours_over['80']) : '\u2013'];
        cells.forEach((text, j) => setText(tr.children[j + 1], text));
    });
    labelCells($('shortlist-table'));
    setText($('shortlist-span'), doc ? view.from + ' to ' + view.to + ', each site in its own local time: ' +
        (all.length > SHOWN ? 'the ' + SHOWN + ' of ' + fmt(all.length) + ' zones' : fmt(all.length) + ' zones') +
        ' with the highest p95 utilisation of their hourly peaks (zones without a capacity last). ' +
        'A zone\u2019s name opens its range.' : '');
}

function load(from, to) {
    const section = panel();
    view.from = from;
    view.to = to;
    return loadPanel(view, section, '/zones?from=' + from + '&to=' + to, render,
        (message) => setText($('shortlist-span'), 'Zones across sites: ' + message));
}

// Called by main.js after each render of All sites, with the overview shown: the 7 days
// ending on its date (today: the latest of the sites' own dates).
function mountShortlist(overview) {
    const dates = overview && Array.isArray(overview.sites) ? overview.sites.map((r) => r && r.date).filter(Boolean) : [];
    const end = overview && overview.date ? overview.date : dates.sort().pop();
    show(panel(), Boolean(end));
    if (end) load(shiftDate(end, -6), end);
}

export {mountShortlist};
