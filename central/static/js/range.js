// The range view: day by day from GET /api/v1/history (with compare=previous) and the
// hour-of-week heatmap from GET /api/v1/profile.

import {$, el, setText, setAttr, show, keyed, labelCells} from './dom.js';
import {num, fmt, hourRange, longDate, shortDate} from './format.js';
import {state, siteInfo, siteThresholds, zoneName} from './state.js';
import {hourColumns, scrollToHour} from './day.js';
import {mountZones} from './zones.js';
import {renderDayChart} from './daychart.js';

const NO_DATA = {
    none: 'No data for this site in any source',
    before: 'Before the site\u2019s first data',
    after: 'After the site\u2019s last data',
    offline: 'No device contact and no events this day'
};
const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

function critTotal(crit) {
    return crit && typeof crit === 'object' ? Object.keys(crit).reduce((s, k) => s + num(crit[k]), 0) : 0;
}
function percent(share) {
    return share === null || share === undefined ? '\u2013' : Math.round(num(share) * 100) + ' %';
}
// Why a day has no numbers to show ('' where it has): before the site's first data or after
// its last (the history's data_range), or devices up for none of its slots and no events
// (coverage 0). A day with events shows them whatever its coverage (raw ingest counts too);
// a site without devices (coverage null) has only data_range to go by.
function noData(s, range) {
    const day = String(s.start).slice(0, 10);
    if (range === null) return 'none';
    if (range && day < range.first_day) return 'before';
    if (range && day > range.last_day) return 'after';
    if (num(s.events) === 0 && s.coverage === 0) return 'offline';
    return '';
}
function periodHasData(series, range) {
    return series.some((s) => !noData(s, range));
}
function signed(n) {
    return (n > 0 ? '+' : n < 0 ? '\u2212' : '\u00b1') + fmt(Math.abs(n));
}

function renderTotals(doc) {
    const t = doc.totals || {};
    const d = doc.totals_diff || null;
    const range = doc.data_range;
    const has = periodHasData(Array.isArray(doc.series) ? doc.series : [], range);
    // Against a previous period without data a difference says nothing: "no data before".
    const before = doc.previous && !periodHasData(doc.previous.series || [], range) ? 'none' : null;
    const diff = (v) => (d ? (before || v) : null);
    const value = (text) => (has ? text : 'no data');
    const items = [
        ['peak', 'Peak (people)', value(fmt(t.peak)), diff(d && d.peak)],
        ['events', 'Events', value(fmt(t.events)), diff(d && d.events)],
        ['critical', 'Critical events', value(fmt(critTotal(t.critical_events))), diff(d && critTotal(d.critical_events))],
        ['utilisation', 'Utilisation', value(percent(t.utilisation)), null],
        ['coverage', 'Coverage', percent(t.coverage), null]
    ];
    const dl = $('range-totals');
    const nodes = keyed(dl, items.map((i) => i[0]), (key) => {
        const div = el('div');
        div.dataset.total = key;
        div.appendChild(el('dt'));
        const dd = div.appendChild(el('dd'));
        dd.appendChild(el('span', 'value'));
        dd.appendChild(el('span', 'diff'));
        return div;
    });
    nodes.forEach((div, i) => {
        const it = items[i];
        setText(div.firstChild, it[1]);
        setText(div.querySelector('.value'), it[2]);
        const diff = div.querySelector('.diff');
        setText(diff, it[3] === null ? '' : it[3] === 'none' ? 'no data before' : signed(it[3]) + ' vs previous');
        diff.className = 'diff' + (it[3] === 'none' ? '' : it[3] > 0 ? ' up' : it[3] < 0 ? ' down' : '');
    });
}

function renderDays(doc) {
    const series = Array.isArray(doc.series) ? doc.series : [];
    const prev = doc.previous && Array.isArray(doc.previous.series) ? doc.previous.series : null;
    const diff = Array.isArray(doc.diff) ? doc.diff : null;
    const th = siteThresholds(state.site);
    // A fixed scale per site: the high threshold, or the range's own peak if above it.
    const scale = Math.max(th.high, ...series.map((s) => num(s.peak)), ...(prev || []).map((s) => num(s.peak)));
    $('range-days').classList.toggle('compare', Boolean(prev));
    renderDayChart(series, prev, series.map((s) => Boolean(noData(s, doc.data_range))),
        (prev || []).map((s) => Boolean(noData(s, doc.data_range))));
    document.querySelectorAll('#range-days .prev-col').forEach((n) => show(n, Boolean(prev)));
    const trs = keyed($('range-body'), series.map((s) => String(s.start)), () => {
        const tr = el('tr');
        tr.appendChild(el('th')).scope = 'row';
        for (let i = 0; i < 7; i++) tr.appendChild(el('td', 'num'));
        const bar = el('span', 'd-bar');
        bar.setAttribute('aria-hidden', 'true');
        tr.children[1].appendChild(bar);
        tr.children[1].appendChild(el('span', 'v'));
        return tr;
    });
    trs.forEach((tr, i) => {
        const s = series[i];
        const day = String(s.start).slice(0, 10);
        const missing = noData(s, doc.data_range);
        tr.dataset.day = day;
        tr.dataset.noData = missing;
        tr.classList.toggle('no-data', Boolean(missing));
        tr.dataset.peak = String(num(s.peak));
        tr.dataset.events = String(num(s.events));
        setText(tr.firstChild, shortDate(day));
        setAttr(tr.firstChild, 'title', longDate(day));
        tr.children[1].firstChild.style.width = Math.round(num(s.peak) / (scale || 1) * 4) + 'rem';
        setText(tr.children[1].lastChild, missing ? 'no data' : fmt(s.peak));
        setAttr(tr.children[1], 'title', NO_DATA[missing] || null);
        setText(tr.children[2], missing ? '\u2013' : fmt(s.events));
        setText(tr.children[3], missing ? '\u2013' : fmt(critTotal(s.critical_events)));
        setText(tr.children[4], missing ? '\u2013' : percent(s.utilisation));
        setText(tr.children[5], missing && !num(s.coverage) ? '\u2013'
            : s.coverage === null || s.coverage === undefined ? 'n/a' : percent(s.coverage));
        const p = prev && prev[i] ? prev[i] : null;
        const d = diff && diff[i] ? diff[i] : null;
        show(tr.children[6], Boolean(prev));
        show(tr.children[7], Boolean(prev));
        const pMissing = p ? noData(p, doc.data_range) : '';
        const change = d && !missing && !pMissing;
        setText(tr.children[6], p ? (pMissing ? 'no data' : fmt(p.peak)) : '\u2013');
        setAttr(tr.children[6], 'title', p ? longDate(String(p.start).slice(0, 10)) : null);
        setText(tr.children[7], change ? signed(num(d.peak)) : '\u2013');
        tr.children[7].className = 'num' + (change && d.peak > 0 ? ' up' : change && d.peak < 0 ? ' down' : '');
        tr.dataset.previousPeak = p ? String(num(p.peak)) : '';
    });
    labelCells($('range-days'));
}

function renderProfile(profile) {
    const head = $('profile-head');
    hourColumns(head);
    const cells = profile && Array.isArray(profile.cells) ? profile.cells : [];
    const th = siteThresholds(state.site);
    const rows = keyed($('profile-body'), WEEKDAYS, (name) => {
        const tr = el('tr');
        tr.appendChild(el('th', null, name.slice(0, 3))).scope = 'row';
        tr.firstChild.title = name;
        for (let h = 0; h < 24; h++) tr.appendChild(el('td'));
        return tr;
    });
    const byKey = new Map(cells.map((c) => [c.weekday * 24 + c.hour, c]));
    rows.forEach((tr, wd) => {
        for (let h = 0; h < 24; h++) {
            const c = byKey.get(wd * 24 + h);
            const td = tr.children[h + 1];
            const mean = c && c.peak_mean !== null && c.peak_mean !== undefined ? num(c.peak_mean) : null;
            // The API's intensity of the cell (its mean against the site's thresholds).
            const lvl = c && ['low', 'medium', 'high'].indexOf(c.intensity) >= 0 ? c.intensity : 'none';
            td.className = 'i-' + lvl;
            setText(td, mean === null ? '' : String(Math.round(mean * 10) / 10));
            td.dataset.mean = mean === null ? '' : String(mean);
            td.dataset.weekday = String(wd);
            td.dataset.hour = String(h);
            const text = WEEKDAYS[wd] + ' ' + hourRange(h) + ': ' + (mean === null ? 'no data'
                : 'mean peak ' + (Math.round(mean * 10) / 10) + ', highest ' + num(c.peak_max) + ' (' + c.days + ' days)');
            setAttr(td, 'title', text);
            setAttr(td, 'aria-label', text);
        }
    });
    const withData = profile && Number.isFinite(profile.weeks_with_data) ? profile.weeks_with_data : null;
    // How many of the weeks had data: "2 of 8 weeks" where the site's data began lately.
    const weeks = !profile ? '' : withData === null ? 'The ' + profile.weeks + ' weeks'
        : withData + ' of ' + profile.weeks + ' weeks with data';
    setText($('profile-note'), profile ? (state.rangeZone ? 'Whole site. ' : '') + weeks + ' from ' + longDate(profile.from) + ' to ' +
        longDate(profile.to) + '. Colours: the mean against the site\u2019s thresholds (medium from ' + th.medium +
        ', high from ' + th.high + ').' : '');
}

function renderRange(doc, profile) {
    const info = siteInfo(state.site);
    const siteName = doc.display_name || (info && info.display_name) || state.site;
    // One zone's range (?zone=, linked from the Zones table): its days and totals; the
    // typical week and the Zones table stay the site's.
    setText($('range-title'), doc.zone ? siteName + ' \u00b7 ' + zoneName(state.site, doc.zone, null) : siteName);
    $('range').dataset.zone = doc.zone || '';
    const whole = $('range-whole-site');
    show(whole, Boolean(doc.zone));
    setAttr(whole, 'href', doc.zone ? window.location.pathname + '?view=range&site=' + encodeURIComponent(state.site) +
        '&from=' + doc.from + '&to=' + doc.to + (doc.previous ? '&compare=previous' : '') : null);
    setText($('range-span'), longDate(doc.from) + ' \u2013 ' + longDate(doc.to) +
        (doc.previous ? ' (compared with ' + longDate(doc.previous.from) + ' \u2013 ' + longDate(doc.previous.to) + ')' : ''));
    renderTotals(doc);
    renderDays(doc);
    renderProfile(profile);
    mountZones(state.site, doc.from, doc.to);  // loads on its own (zones.js)
    // The typical week opens at the working day on a narrow screen.
    scrollToHour($('profile').closest('.table-scroll'), $('profile-head'), 8, state.site + '|' + state.to);
    return 'ready';
}

export {renderRange};
