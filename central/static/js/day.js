// The day view: floor plan, legend, critical events, hourly strip and zone x hour matrix.

import {$, el, setText, setAttr, setBreakable, setLevel, show, keyed} from './dom.js';
import {LEVEL_TEXT, SOURCE_TEXT, num, fmt, level, pad2, hourRange, humanTrigger, validZone, longDate,
    quartersPerHour, timeIn, dateTimeIn, partsIn} from './format.js';
import {state, siteInfo, siteTz, zoneName, zoneConfig, viewingToday, siteThresholds, ownThresholds, zonePosition,
    zoneOrder} from './state.js';
import {main, setState} from './page.js';
import {showTypical} from './typical.js';

// ---- rendering -----------------------------------------------------------------------------

// Length of the day in hours from its bounds, where meta.hours is absent.
function dayHours(meta) {
    const ms = Date.parse(meta && meta.day_end) - Date.parse(meta && meta.day_start);
    return ms > 0 ? Math.round(ms / 900e3) / 4 : 0;
}
// Where the site's data lies, said on an empty day (meta.data_range).
function dataRangeText(meta) {
    if (!('data_range' in meta)) return '';
    const r = meta.data_range;
    if (!r || typeof r !== 'object') return ' No data has been recorded for this site yet.';
    if (r.first_day === r.last_day) return ' Its only data is from ' + longDate(r.first_day) + '.';
    return ' Its data runs from ' + longDate(r.first_day) + ' to ' + longDate(r.last_day) + '.';
}
function render(data) {
    const site = state.site;
    const meta = data.meta && typeof data.meta === 'object' ? data.meta : {};
    const zones = data.zones && typeof data.zones === 'object' ? data.zones : {};
    const hourly = Array.isArray(data.hourly) ? data.hourly : [];
    const crit = data.critical_events && typeof data.critical_events === 'object' ? data.critical_events : {};
    const zoneHourly = data.zone_hourly && typeof data.zone_hourly === 'object' ? data.zone_hourly : null;
    const tz = validZone(meta.timezone) ? meta.timezone : siteTz(site);

    const info = siteInfo(site);
    setText($('view-site'), info && info.display_name ? info.display_name : site);
    setText($('view-day'), longDate(state.date) + (viewingToday() ? ' (today)' : ''));
    renderMeta(meta, tz);
    renderDevices(info, tz);

    const names = zoneOrder(site, zones, zoneHourly, meta);
    const total = num(crit.total_events);
    const empty = Object.keys(zones).length === 0 && total === 0 && hourly.length === 0;
    setText($('empty-message'), 'Nothing was recorded at ' + (info && info.display_name ? info.display_name : site) +
        ' on ' + longDate(state.date) + '.' + dataRangeText(meta) + (viewingToday() ? ' This view refreshes on its own.' : ''));
    show($('empty'), empty);
    show($('panels'), !empty);

    if (state.selectedZone && names.indexOf(state.selectedZone) < 0) state.selectedZone = null;
    renderLegend(site);
    if (state.selectedHour !== null && !zoneHourly) state.selectedHour = null;
    renderPlan(site, names, state.selectedHour === null ? zones : zonesAt(zoneHourly, state.selectedHour), meta);
    renderPlanHour(site);
    renderCritical(crit);
    renderStrip(hourly, zoneHourly, meta, tz, site);
    renderMatrix(site, names, zoneHourly, meta, tz);
    showTypical(data, site, state.selectedZone);

    state.renders += 1;
    main.dataset.renders = String(state.renders);
    main.dataset.view = 'day';
    main.dataset.site = site;
    main.dataset.date = state.date || '';
    setState(empty ? 'empty' : 'ready');
}

function renderMeta(meta, tz) {
    const source = typeof meta.source === 'string' ? meta.source : 'unknown';
    const badge = $('meta-source');
    setText(badge, SOURCE_TEXT[source] || source);
    setAttr(badge, 'class', 'badge ' + (SOURCE_TEXT[source] ? source : ''));
    badge.dataset.source = source;
    const cov = Number(meta.coverage);
    setText($('meta-coverage'), Number.isFinite(cov) ? Math.round(cov * 100) + ' %' : 'n/a');
    const slots = meta.slots && typeof meta.slots === 'object' ? meta.slots : null;
    setText($('meta-slots'), slots ? 'Slots: ' + fmt(slots.edge) + ' edge, ' + fmt(slots.raw) + ' raw, ' + fmt(slots.repaired) + ' repaired' : '');
    const computed = $('meta-computed');
    setAttr(computed, 'datetime', meta.computed_at || null);
    setText(computed, meta.computed_at ? timeIn(tz, meta.computed_at) + ' site time' : 'n/a');
    setText($('meta-tz'), tz || 'unknown');
    // The day's real length (23.5 or 24.5 where the clock moves by 30 minutes).
    const hours = num(meta.hours) || dayHours(meta);
    setText($('meta-hours'), hours && hours !== 24 ? hours + '-hour day (clock change)' : '');
    show($('meta-hours'), Boolean(hours && hours !== 24));
    const live = viewingToday() && state.refreshSeconds > 0;
    setText($('meta-live'), live ? 'Live: refreshes every ' + state.refreshSeconds + ' s' : 'Past day: not refreshing');
    $('meta-live').classList.toggle('live', live);
    show($('meta-warning'), false);
}

// Edge devices of the site as /api/v1/sites last reported them (loaded with the page).
function renderDevices(info, tz) {
    const node = $('meta-devices');
    const devices = info && Array.isArray(info.devices) ? info.devices.filter((d) => d && d.device_id) : [];
    show(node, devices.length > 0);
    if (!devices.length) return;
    const counts = {};
    devices.forEach((d) => { const st = String(d.status || 'unknown'); counts[st] = (counts[st] || 0) + 1; });
    setText(node, 'Devices: ' + Object.keys(counts).sort().map((st) => counts[st] + ' ' + st).join(', '));
    setAttr(node, 'title', devices.map((d) => d.device_id + ': ' + (d.status || 'unknown') +
        (d.last_seen ? ', last seen ' + dateTimeIn(tz, d.last_seen) : '')).join('\n'));
}



function renderLegend(site) {
    const info = siteInfo(site);
    const base = siteThresholds(site);
    const high = base.high, medium = base.medium;
    const items = [
        ['low', 'Low: under ' + medium + ' people'],
        ['medium', 'Medium: ' + medium + ' to ' + (high - 1)],
        ['high', 'High: ' + high + ' or more'],
        ['none', 'No data']
    ];
    const zones = info && info.zones && typeof info.zones === 'object' ? info.zones : {};
    const own = Object.keys(zones).filter((z) => ownThresholds(site, z));
    const legend = $('legend');
    items.forEach((item, i) => {
        let li = legend.children[i];
        if (!li) {
            li = el('li');
            li.appendChild(el('span', 'swatch i-' + item[0])).setAttribute('aria-hidden', 'true');
            li.appendChild(el('span'));
            legend.appendChild(li);
        }
        setText(li.lastChild, item[1]);
    });
    const withCapacity = Object.keys(zones).filter((z) => zoneCapacity(site, z));
    let cap = legend.children[items.length];
    if (!cap) { cap = legend.appendChild(el('li', 'muted')); cap.id = 'legend-capacity'; }
    setText(cap, withCapacity.length ? withCapacity.map((z) => zoneName(site, z, null)).join(', ') +
        ' by share of capacity: low under ' + CAPACITY.medium + ' %, medium ' + CAPACITY.medium + ' to ' +
        (CAPACITY.high - 1) + ' %, high ' + CAPACITY.high + ' % or more' : '');
    show(cap, withCapacity.length > 0);
    let note = legend.children[items.length + 1];
    if (!note) note = legend.appendChild(el('li', 'muted'));
    setText(note, own.length ? '* ' + own.map((z) => zoneName(site, z, null)).join(', ') +
        (own.length === 1 ? ' has' : ' have') + ' own thresholds' : '');
    show(note, own.length > 0);
}



// Share-of-capacity bands for zones with a capacity (the API's capacity_high / _medium defaults).
const CAPACITY = {high: 90, medium: 50};

function zoneCapacity(site, zone) {
    const cfg = zoneConfig(site, zone);
    const c = cfg ? Number(cfg.capacity) : NaN;
    return Number.isInteger(c) && c > 0 ? c : null;
}

// The zones' figures in one local hour, from zone_hourly (count = that hour's peak).
function zonesAt(zoneHourly, hour) {
    const out = {};
    Object.keys(zoneHourly).forEach((zone) => {
        const r = (Array.isArray(zoneHourly[zone]) ? zoneHourly[zone] : []).find((x) => x && x.hour === hour);
        if (r) out[zone] = {peak: r.count, events: r.events, intensity: r.intensity};
    });
    return out;
}

function renderPlanHour(site) {
    const node = $('plan-hour');
    const hour = state.selectedHour;
    setText(node, hour === null ? '' : 'At ' + hourRange(hour));
    show(node, hour !== null);
    $('plan').dataset.hour = hour === null ? '' : String(hour);
}

// A fixed bar scale per site (or zone): its capacity, else twice its high threshold; the
// day's own maximum would make a quiet Sunday look as full as a busy Wednesday.
function stripScale(site, zone) {
    if (zone) {
        const cap = zoneCapacity(site, zone);
        return cap ? {max: cap, why: 'capacity'} : {max: 2 * (ownThresholds(site, zone) || siteThresholds(site)).high, why: 'twice the high threshold'};
    }
    const info = siteInfo(site);
    const zones = info && info.zones && typeof info.zones === 'object' ? Object.keys(info.zones) : [];
    const caps = zones.map((z) => zoneCapacity(site, z)).filter(Boolean);
    return caps.length ? {max: caps.reduce((a, b) => a + b, 0), why: 'total capacity'}
        : {max: 2 * siteThresholds(site).high, why: 'twice the high threshold'};
}

function currentHour(tz) {
    if (!validZone(tz) || !viewingToday()) return null;
    const p = partsIn(tz, new Date(), {hour: '2-digit', hourCycle: 'h23'});
    return parseInt(p.hour, 10) % 24;
}

function selectHour(hour) {
    state.selectedHour = state.selectedHour === hour ? null : hour;
    if (state.data) render(state.data);
}

function renderPlan(site, names, zones, meta) {
    const plan = $('plan');
    const positions = names.map((z) => zonePosition(site, z));
    const anyPlaced = positions.some(Boolean);
    let cols = 0, rows = 0;
    positions.forEach((p) => { if (p) { cols = Math.max(cols, p.x + p.w); rows = Math.max(rows, p.y + p.h); } });
    plan.className = anyPlaced ? 'plan floor' : 'plan tidy';
    plan.dataset.layout = anyPlaced ? 'floor' : 'grid';
    if (anyPlaced) {
        plan.style.gridTemplateColumns = 'repeat(' + cols + ', minmax(6.5rem, 1fr))';
        plan.style.gridAutoRows = 'minmax(7rem, auto)';
    } else {
        plan.style.gridTemplateColumns = '';
        plan.style.gridAutoRows = '';
    }
    let spare = 0;  // zones without a position go in rows under the floor plan
    const nodes = keyed(plan, names, (zone) => {
        const b = el('button');
        b.type = 'button';
        b.dataset.zone = zone;
        b.appendChild(el('span', 'z-name'));
        const figs = b.appendChild(el('span', 'z-figures'));
        figs.appendChild(el('span', 'z-peak'));
        figs.appendChild(el('span', 'z-unit', 'peak'));
        const foot = b.appendChild(el('span', 'z-foot'));
        foot.appendChild(el('span', 'z-events'));
        foot.appendChild(el('span', 'z-level'));
        b.appendChild(el('span', 'z-more visually-hidden'));
        b.addEventListener('click', () => selectZone(b.dataset.zone));
        return b;
    });
    nodes.forEach((b, i) => {
        const zone = names[i];
        const z = zones[zone] && typeof zones[zone] === 'object' ? zones[zone] : null;
        const apiLevel = z ? level(z.intensity) : 'none';
        const capacity = zoneCapacity(site, zone);
        const share = z && capacity ? num(z.peak) / capacity : null;
        const lvl = share === null ? apiLevel : share >= CAPACITY.high / 100 ? 'high' : share >= CAPACITY.medium / 100 ? 'medium' : 'low';
        const label = zoneName(site, zone, meta);
        setLevel(b, lvl, 'zone');
        setBreakable(b.querySelector('.z-name'), label);
        setText(b.querySelector('.z-peak'), z ? fmt(z.peak) : '\u2013');
        const events = z ? num(z.events) : 0;
        setText(b.querySelector('.z-events'), z ? fmt(events) + (events === 1 ? ' event' : ' events') : 'no events');
        const own = ownThresholds(site, zone);
        setText(b.querySelector('.z-level'), LEVEL_TEXT[lvl] + (share !== null ? ' \u00b7 ' + Math.round(share * 100) + ' % of ' + capacity : '') + (own ? ' *' : ''));
        b.dataset.peak = z ? String(num(z.peak)) : '';
        b.dataset.events = String(events);
        b.dataset.intensity = apiLevel;
        b.dataset.level = lvl;
        b.dataset.utilisation = share === null ? '' : String(share);
        const th = own || siteThresholds(site);
        setAttr(b, 'title', (label !== zone ? label + ' (' + zone + ')\n' : '') +
            (capacity ? 'Capacity ' + capacity + ' people: high from ' + CAPACITY.high + ' %, medium from ' + CAPACITY.medium + ' %\n' : '') +
            'Thresholds' + (own ? ' (own)' : ' (site)') + ': high from ' + th.high + ', medium from ' + th.medium + ' people');
        setAttr(b, 'aria-pressed', state.selectedZone === zone ? 'true' : 'false');
        // The accessible name is the visible text plus this (axe: label-content-name-mismatch).
        setText(b.querySelector('.z-more'), (own ? ' (own thresholds: high from ' + own.high + ', medium from ' + own.medium + ')' : '') +
            '. Shows its hours below.');
        const p = positions[i];
        let area = '';
        if (p) {
            area = (p.y + 1) + ' / ' + (p.x + 1) + ' / span ' + p.h + ' / span ' + p.w;
        } else if (anyPlaced) {
            area = (rows + 1 + Math.floor(spare / cols)) + ' / ' + (spare % cols + 1) + ' / span 1 / span 1';
            spare += 1;
        }
        if (b.style.gridArea !== area) b.style.gridArea = area;
    });
}

function renderCritical(crit) {
    const entries = Object.keys(crit).filter((k) => k !== 'total_events')
        .map((k) => [k, num(crit[k])])
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const max = entries.reduce((m, e) => Math.max(m, e[1]), 0);
    const list = $('critical');
    const nodes = keyed(list, entries.map((e) => e[0]), (name) => {
        const li = el('li');
        li.dataset.trigger = name;
        li.appendChild(el('span', 'c-name'));
        li.appendChild(el('span', 'c-count'));
        const bar = li.appendChild(el('span', 'c-bar'));
        bar.setAttribute('aria-hidden', 'true');
        bar.appendChild(el('span'));
        return li;
    });
    nodes.forEach((li, i) => {
        const name = entries[i][0], count = entries[i][1];
        const nameNode = li.querySelector('.c-name');
        setText(nameNode, humanTrigger(name));
        setAttr(nameNode, 'title', name);
        setText(li.querySelector('.c-count'), fmt(count));
        li.querySelector('.c-bar span').style.width = (max ? Math.round(count / max * 100) : 0) + '%';
    });
    show($('critical-none'), entries.length === 0);
    setText($('total-events'), fmt(crit.total_events));
}

function renderStrip(hourly, zoneHourly, meta, tz, site) {
    const zone = state.selectedZone;
    const rows = zone && zoneHourly && Array.isArray(zoneHourly[zone]) ? zoneHourly[zone] : (zone ? [] : hourly);
    const byHour = new Map();
    rows.forEach((r) => {
        if (r && Number.isInteger(r.hour) && r.hour >= 0 && r.hour < 24) byHour.set(r.hour, r);
    });
    const scale = stripScale(site, zone);
    const max = scale.max;
    $('strip').dataset.max = String(max);
    setText($('strip-scale'), 'Bars: 0 to ' + max + ' people (' + scale.why + '); a dark top edge marks more.');
    const nowHour = currentHour(tz);
    const quarters = quartersPerHour(meta, tz);
    setText($('hourly-title'), zone ? 'Hourly peak: ' + zoneName(site, zone, meta) : 'Hourly peak (people, site-wide)');
    show($('clear-zone'), Boolean(zone));
    const strip = $('strip');
    const hours = Array.from({length: 24}, (_, h) => String(h));
    const nodes = keyed(strip, hours, (h) => {
        const li = el('li', 'hour');
        li.dataset.hour = h;
        const btn = li.appendChild(el('button', 'h-btn'));
        btn.type = 'button';
        btn.addEventListener('click', () => selectHour(Number(h)));
        btn.appendChild(el('span', 'h-count'));
        const track = btn.appendChild(el('span', 'h-track'));
        track.setAttribute('aria-hidden', 'true');
        track.appendChild(el('span', 'h-bar'));
        btn.appendChild(el('span', 'h-label', pad2(Number(h))));
        // The accessible name is the visible text plus this (axe: label-content-name-mismatch).
        btn.appendChild(el('span', 'h-more visually-hidden'));
        return li;
    });
    nodes.forEach((li, h) => {
        const r = byHour.get(h);
        const count = r ? num(r.count) : null;
        const lvl = r ? level(r.intensity) : 'none';
        const skipped = quarters[h] === 0;
        const repeated = quarters[h] > 4;
        const short = quarters[h] > 0 && quarters[h] < 4;  // a 30- or 45-minute clock change
        const future = nowHour !== null && h > nowHour;
        li.className = 'hour' + (skipped ? ' skipped' : '') + (repeated ? ' repeated' : '') + (short ? ' short' : '') +
            (future ? ' future' : '') + (nowHour === h ? ' now' : '') + (count !== null && count > max ? ' over' : '');
        setText(li.querySelector('.h-count'), count === null ? '' : fmt(count));
        const bar = li.querySelector('.h-bar');
        setLevel(bar, lvl, 'h-bar');
        const height = count === null || max === 0 ? 0 : Math.min(100, Math.max(4, Math.round(count / max * 100)));
        bar.style.height = height + '%';
        li.dataset.count = count === null ? '' : String(count);
        li.dataset.intensity = lvl;
        let text = hourRange(h) + ': ';
        if (skipped) text += 'not on this day (clock change)';
        else if (count === null) text += 'no data';
        else text += 'peak ' + count + ' people, ' + LEVEL_TEXT[lvl].toLowerCase();
        if (repeated) text += quarters[h] >= 8 ? ' (this hour happens twice: clock change)'
            : ' (' + (quarters[h] - 4) * 15 + ' minutes of this hour happen twice: clock change)';
        if (short) text += ' (only ' + quarters[h] * 15 + ' minutes on this day: clock change)';
        if (nowHour === h) text += ' (now)';
        else if (future) text += ' (later today)';
        const btn = li.firstChild;
        setText(btn.querySelector('.h-more'), ' ' + text + '. Shows the floor plan at this hour.');
        setAttr(btn, 'aria-pressed', state.selectedHour === h ? 'true' : 'false');
        setAttr(li, 'title', text);
    });
}

// The 24 hour columns of a table head that holds only its first column (once).
function hourColumns(head) {
    if (head.children.length === 1) {
        for (let h = 0; h < 24; h++) {
            const th = el('th', null, pad2(h));
            th.scope = 'col';
            th.setAttribute('aria-label', hourRange(h));
            head.appendChild(th);
        }
    }
}

function renderMatrix(site, names, zoneHourly, meta, tz) {
    show($('matrix-missing'), !zoneHourly);
    $('matrix').hidden = !zoneHourly;
    if (!zoneHourly) return;
    const head = $('matrix-head');
    hourColumns(head);
    const quarters = quartersPerHour(meta, tz);
    const body = $('matrix-body');
    const rows = keyed(body, names, (zone) => {
        const tr = el('tr');
        tr.dataset.zone = zone;
        const th = el('th');
        th.scope = 'row';
        tr.appendChild(th);
        for (let h = 0; h < 24; h++) {
            const td = el('td');
            td.dataset.hour = String(h);
            tr.appendChild(td);
        }
        return tr;
    });
    rows.forEach((tr, i) => {
        const zone = names[i];
        const label = zoneName(site, zone, meta);
        setText(tr.firstChild, label);
        setAttr(tr.firstChild, 'title', label !== zone ? label + ' (' + zone + ')' : zone);
        tr.classList.toggle('selected', state.selectedZone === zone);
        const byHour = new Map();
        (Array.isArray(zoneHourly[zone]) ? zoneHourly[zone] : []).forEach((r) => {
            if (r && Number.isInteger(r.hour) && r.hour >= 0 && r.hour < 24) byHour.set(r.hour, r);
        });
        for (let h = 0; h < 24; h++) {
            const td = tr.children[h + 1];
            const r = byHour.get(h);
            const lvl = r ? level(r.intensity) : 'none';
            setLevel(td, lvl);
            setText(td, r ? fmt(r.count) : (quarters[h] === 0 ? '\u00b7' : ''));
            td.dataset.count = r ? String(num(r.count)) : '';
            td.dataset.events = r ? String(num(r.events)) : '';
            const text = label + ', ' + hourRange(h) + ': ' + (r
                ? 'peak ' + num(r.count) + ', ' + num(r.events) + ' events'
                : (quarters[h] === 0 ? 'not on this day' : 'no data'));
            setAttr(td, 'title', text);
            setAttr(td, 'aria-label', text);
        }
    });
}

function selectZone(zone) {
    state.selectedZone = state.selectedZone === zone ? null : zone;
    if (state.data) render(state.data);
}

export {hourColumns, render, selectHour, renderMeta, renderDevices, renderLegend, renderPlan, renderCritical, renderStrip, renderMatrix, selectZone};
