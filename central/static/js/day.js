// The day view: floor plan, legend, critical events, hourly strip and zone x hour matrix.

import {$, el, setText, setAttr, setBreakable, setLevel, show, keyed} from './dom.js';
import {LEVEL_TEXT, SOURCE_TEXT, num, fmt, level, pad2, hourRange, humanTrigger, validZone, longDate,
    quartersPerHour, timeIn, dateTimeIn, partsIn} from './format.js';
import {state, siteInfo, siteTz, zoneName, viewingToday, siteThresholds, zoneThresholds, ownThresholds, capacityBands,
    zoneCapacity, zonePosition, zoneOrder} from './state.js';
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
    // Today's tiles lead with now (the API's current slot); an hour picked on the strip shows that hour.
    const now = state.selectedHour === null && data.now && typeof data.now === 'object' ? data.now : null;
    renderPlan(site, names, state.selectedHour === null ? zones : zonesAt(zoneHourly, state.selectedHour), meta, now);
    renderPlanHour(site);
    renderCritical(crit);
    renderStrip(hourly, zoneHourly, meta, tz, site);
    renderMatrix(site, names, zoneHourly, meta, tz);
    showTypical(data, site, state.selectedZone);

    return empty ? 'empty' : 'ready';
}

// Selecting a zone or an hour draws the page again through main.js's one render step.
let redraw = () => {};
function onRedraw(fn) { redraw = fn; }

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
    // Today: the time is enough; another day: the moment in full, or it reads as that day's.
    setText(computed, !meta.computed_at ? 'n/a'
        : timeIn(tz, meta.computed_at, !viewingToday()) + ' site time');
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
    const zones = info && info.zones && typeof info.zones === 'object' ? info.zones : {};
    const own = Object.keys(zones).filter((z) => ownThresholds(site, z));
    // Where zones have thresholds of their own (own or from capacity), a colour means "at or
    // above that zone's threshold", not a number of people: the legend says so once.
    const differ = Object.keys(zones).some((z) => {
        const th = zoneThresholds(site, z);
        return th.high !== high || th.medium !== medium;
    });
    const items = differ ? [
        ['low', 'Low: under its medium threshold'],
        ['medium', 'Medium: from its medium threshold'],
        ['high', 'High: from its high threshold'],
        ['none', 'No data']
    ] : [
        ['low', 'Low: under ' + medium + ' people'],
        ['medium', 'Medium: ' + medium + ' to ' + (high - 1)],
        ['high', 'High: ' + high + ' or more'],
        ['none', 'No data']
    ];
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
    // Zones whose thresholds the API took from their capacity (intensity = "capacity").
    const bands = capacityBands(site);
    const withCapacity = Object.keys(zones).filter((z) => zoneThresholds(site, z).origin === 'capacity');
    let cap = legend.children[items.length];
    if (!cap) { cap = legend.appendChild(el('li', 'muted')); cap.id = 'legend-capacity'; }
    setText(cap, withCapacity.length && bands ? withCapacity.map((z) => zoneName(site, z, null)).join(', ') +
        ' by share of capacity: low under ' + bands.medium + ' %, medium ' + bands.medium + ' to under ' +
        bands.high + ' %, high ' + bands.high + ' % or more' : '');
    show(cap, withCapacity.length > 0 && bands !== null);
    let note = legend.children[items.length + 1];
    if (!note) note = legend.appendChild(el('li', 'muted'));
    setText(note, own.length ? '* ' + own.map((z) => zoneName(site, z, null)).join(', ') +
        (own.length === 1 ? ' has' : ' have') + ' own thresholds' : '');
    show(note, own.length > 0);
    // Each colour's thresholds, once: the site's (hourly peak, zones without their own) and
    // every zone's that differ.
    let limits = legend.children[items.length + 2];
    if (!limits) { limits = legend.appendChild(el('li', 'muted')); limits.id = 'legend-thresholds'; }
    const zoneLimits = Object.keys(zones).map((z) => [z, zoneThresholds(site, z)])
        .filter((e) => e[1].high !== high || e[1].medium !== medium)
        .map((e) => zoneName(site, e[0], null) + ' ' + e[1].medium + ' / ' + e[1].high);
    setText(limits, differ ? 'Medium / high from (people): ' + zoneLimits.join(', ') +
        '; hourly peak and other zones ' + medium + ' / ' + high + ' (site)' : '');
    show(limits, differ);
}



// The zones' figures in one local hour, from zone_hourly (count = that hour's peak).
function zonesAt(zoneHourly, hour) {
    const out = {};
    Object.keys(zoneHourly).forEach((zone) => {
        const r = (Array.isArray(zoneHourly[zone]) ? zoneHourly[zone] : []).find((x) => x && x.hour === hour);
        if (r) out[zone] = {peak: r.count, events: r.events, intensity: r.intensity, utilisation: r.utilisation};
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
// day's own maximum would make a quiet Sunday look as full as a busy Wednesday. The site's
// hourly count is the busiest zone's peak (meta.sitewide), so its scale is a zone's too:
// the largest zone's capacity, never the sum of them all.
function stripScale(site, zone) {
    if (zone) {
        const cap = zoneCapacity(site, zone);
        return cap ? {max: cap, why: 'capacity'} : {max: 2 * zoneThresholds(site, zone).high, why: 'twice the high threshold'};
    }
    const info = siteInfo(site);
    const zones = info && info.zones && typeof info.zones === 'object' ? Object.keys(info.zones) : [];
    const caps = zones.map((z) => zoneCapacity(site, z)).filter(Boolean);
    return caps.length ? {max: Math.max.apply(null, caps), why: 'the largest zone\'s capacity'}
        : {max: 2 * siteThresholds(site).high, why: 'twice the high threshold'};
}

function currentHour(tz) {
    if (!validZone(tz) || !viewingToday()) return null;
    const p = partsIn(tz, new Date(), {hour: '2-digit', hourCycle: 'h23'});
    return parseInt(p.hour, 10) % 24;
}

function selectHour(hour) {
    state.selectedHour = state.selectedHour === hour ? null : hour;
    redraw();
}

function renderPlan(site, names, zones, meta, now) {
    const nowZones = now && now.zones && typeof now.zones === 'object' ? now.zones : {};
    const asOf = now && typeof now.as_of === 'string' ? now.as_of.slice(11, 16) : '';
    $('main').dataset.asOf = asOf;
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
    // Busiest first where tiles become cards (a phone): intensity, then share, then peak.
    const LOAD = {high: 3, medium: 2, low: 1};
    const load = (zone) => {
        const z = zones[zone] && typeof zones[zone] === 'object' ? zones[zone] : null;
        return z ? [LOAD[level(z.intensity)] || 0, Number.isFinite(Number(z.utilisation)) && z.utilisation !== null ? Number(z.utilisation) : -1, num(z.peak)] : [0, -1, -1];
    };
    const ranked = names.slice().sort((a, b) => {
        const la = load(a), lb = load(b);
        return lb[0] - la[0] || lb[1] - la[1] || lb[2] - la[2];
    });
    let spare = 0;  // zones without a position go in rows under the floor plan
    const nodes = keyed(plan, names, (zone) => {
        const b = el('button');
        b.type = 'button';
        b.dataset.zone = zone;
        b.appendChild(el('span', 'z-name'));
        const figs = b.appendChild(el('span', 'z-figures'));
        figs.appendChild(el('span', 'z-peak'));
        figs.appendChild(el('span', 'z-unit', 'peak'));
        figs.appendChild(el('span', 'z-day'));
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
        // Today: now's numbers, and its colour (the API's intensity of now), so a tile is not
        // red at 0 people after a busy morning.
        const n = nowZones[zone] && Number.isInteger(nowZones[zone].peak) ? nowZones[zone] : null;
        // The colour is the API's intensity, whatever the thresholds (own, capacity, site).
        // A zone without events today stays uncoloured, whatever now says (0 people).
        const lvl = z ? level(n && n.intensity ? n.intensity : z.intensity) : 'none';
        const capacity = zoneCapacity(site, zone);
        const share = z && capacity && Number.isFinite(Number(z.utilisation)) && z.utilisation !== null ? Number(z.utilisation) : null;
        const th = zoneThresholds(site, zone);
        const label = zoneName(site, zone, meta);
        setLevel(b, lvl, 'zone');
        setBreakable(b.querySelector('.z-name'), label);
        // Today: the big number is now, the day's peak beside it; other days: the day's peak.
        setText(b.querySelector('.z-peak'), n ? fmt(n.peak) : z ? fmt(z.peak) : '\u2013');
        setText(b.querySelector('.z-unit'), n ? 'now' : 'peak');
        const day = b.querySelector('.z-day');
        setText(day, n ? 'peak ' + (z ? fmt(z.peak) : '0') + ' today' : '');
        day.hidden = !n;
        let line = b.querySelector('.z-now');
        if (n && !line) line = b.insertBefore(el('span', 'z-now'), b.querySelector('.z-foot'));
        if (!n && line) line.remove();
        if (n) {
            const cap = zoneCapacity(site, zone);
            const share = n.share !== null && n.share !== undefined && Number.isFinite(Number(n.share))
                ? Math.round(Number(n.share) * 100) + ' %' + (cap ? ' of ' + cap : '') + ' \u00b7 ' : '';
            setText(line, share + 'as of ' + asOf);
        }
        b.dataset.nowPeak = n ? String(n.peak) : '';
        b.dataset.nowShare = n && n.share !== null && n.share !== undefined ? String(n.share) : '';
        const events = z ? num(z.events) : 0;
        setText(b.querySelector('.z-events'), z ? fmt(events) + (events === 1 ? ' event' : ' events') : 'no events');
        const own = th.origin === 'own';
        setText(b.querySelector('.z-level'), LEVEL_TEXT[lvl] + (share !== null ? ' \u00b7 ' + Math.round(share * 100) + ' % of ' + capacity : '') + (own ? ' *' : ''));
        b.dataset.peak = z ? String(num(z.peak)) : '';
        b.dataset.events = String(events);
        b.dataset.intensity = lvl;
        b.dataset.level = lvl;
        b.dataset.origin = th.origin;
        b.dataset.utilisation = share === null ? '' : String(share);
        const bands = capacityBands(site);
        const why = own ? ' (own)' : th.origin === 'capacity' && bands
            ? ' (' + bands.high + ' % and ' + bands.medium + ' % of its capacity)' : ' (site)';
        setAttr(b, 'title', (label !== zone ? label + ' (' + zone + ')\n' : '') +
            (capacity ? 'Capacity ' + capacity + ' people\n' : '') +
            'Thresholds' + why + ': high from ' + th.high + ', medium from ' + th.medium + ' people');
        setAttr(b, 'aria-pressed', state.selectedZone === zone ? 'true' : 'false');
        // The accessible name is the visible text plus this (axe: label-content-name-mismatch).
        setText(b.querySelector('.z-more'), (own ? ' (own thresholds: high from ' + th.high + ', medium from ' + th.medium + ')' : '') +
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
        const rank = String(ranked.indexOf(zone));
        if (b.style.getPropertyValue('--load') !== rank) b.style.setProperty('--load', rank);
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
    setText($('hourly-title'), zone ? 'Hourly peak: ' + zoneName(site, zone, meta) : 'Hourly peak (people, busiest zone)');
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

// Where a table of 24 hour columns is wider than its scroll area (a phone), open it at
// ``hour`` rather than at midnight: once per ``key`` (a new site or day), so that a refresh
// leaves the reader's own scrolling alone.
function scrollToHour(scroller, head, hour, key, tries) {
    if (scroller.dataset.scrolledFor === key) return;
    if (!scroller.clientWidth) {
        // Not shown yet (the view becomes visible after it is drawn): measure next frame.
        if ((tries || 0) < 10) requestAnimationFrame(() => scrollToHour(scroller, head, hour, key, (tries || 0) + 1));
        return;
    }
    scroller.dataset.scrolledFor = key;
    const th = head.children[hour + 1];
    if (!th || scroller.scrollWidth <= scroller.clientWidth) return;
    scroller.scrollLeft = Math.max(0, th.offsetLeft - head.children[0].offsetWidth);
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
    // Today: the hour now; another day: its first hour with data, else the working day.
    const hours = Object.keys(zoneHourly).flatMap((z) => (Array.isArray(zoneHourly[z]) ? zoneHourly[z] : [])
        .map((r) => r && r.hour)).filter((h) => Number.isInteger(h) && h >= 0 && h < 24);
    const now = currentHour(tz);
    const open = now !== null ? Math.max(0, now - 1) : hours.length ? Math.min.apply(null, hours) : 8;
    scrollToHour($('matrix').closest('.matrix-scroll'), head, open, site + '|' + state.date);
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
    redraw();
}

// A zone at an hour (from an alert): its hours on the strip, the plan at that hour, the
// tile in view and focused.
function showZoneHour(zone, hour) {
    state.selectedZone = zone;
    state.selectedHour = Number.isInteger(hour) && hour >= 0 && hour < 24 ? hour : null;
    redraw();
    const tile = Array.from($('plan').children).find((n) => n.dataset.zone === zone);
    if (tile) { tile.scrollIntoView({block: 'center'}); tile.focus({preventScroll: true}); }
}

export {hourColumns, scrollToHour, render, onRedraw, selectHour, renderMeta, renderDevices, renderLegend, renderPlan, renderCritical, renderStrip, renderMatrix, selectZone, showZoneHour};
