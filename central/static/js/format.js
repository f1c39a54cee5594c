// How numbers, levels, hours and dates are written, and local time in a site's IANA zone.


const LEVELS = ['low', 'medium', 'high'];
const LEVEL_TEXT = {low: 'Low', medium: 'Medium', high: 'High', none: 'No data'};
const SOURCE_TEXT = {edge: 'edge aggregates', raw: 'raw events', mixed: 'mixed (edge + raw)', none: 'no data'};
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

function num(value) {
    const n = Number(value);
    return Number.isFinite(n) ? n : 0;
}
const numberFormat = new Intl.NumberFormat();
function fmt(value) { return numberFormat.format(num(value)); }
function level(value) { return LEVELS.indexOf(value) >= 0 ? value : 'none'; }
function pad2(n) { return (n < 10 ? '0' : '') + n; }
function hourRange(h) { return pad2(h) + ':00\u2013' + pad2((h + 1) % 24) + ':00'; }
function humanTrigger(name) {
    const words = String(name).replace(/[_.-]+/g, ' ').trim().toLowerCase();
    return words ? words.charAt(0).toUpperCase() + words.slice(1) : String(name);
}

// ---- time --------------------------------------------------------------------------
function validZone(tz) {
    if (!tz) return false;
    try { new Intl.DateTimeFormat('en', {timeZone: tz}); return true; } catch (e) { return false; }
}
function partsIn(tz, when, options) {
    const out = {};
    new Intl.DateTimeFormat('en-GB', Object.assign({timeZone: tz}, options))
        .formatToParts(when).forEach((p) => { out[p.type] = p.value; });
    return out;
}
function todayIn(tz) {
    if (!validZone(tz)) return null;
    const p = partsIn(tz, new Date(), {year: 'numeric', month: '2-digit', day: '2-digit'});
    return p.year + '-' + p.month + '-' + p.day;
}
function validDate(text) {
    if (!DATE_RE.test(text || '')) return false;
    const d = new Date(text + 'T00:00:00Z');
    return !isNaN(d) && d.toISOString().slice(0, 10) === text;
}
function shiftDate(text, days) {
    const d = new Date(text + 'T00:00:00Z');
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
}
function longDate(text) {
    if (!validDate(text)) return text || '';
    return new Intl.DateTimeFormat(undefined, {
        timeZone: 'UTC', weekday: 'long', year: 'numeric', month: 'long', day: 'numeric'
    }).format(new Date(text + 'T12:00:00Z'));
}
function shortDate(text) {
    if (!validDate(text)) return text || '';
    return new Intl.DateTimeFormat(undefined, {
        timeZone: 'UTC', weekday: 'short', month: 'short', day: 'numeric'
    }).format(new Date(text + 'T12:00:00Z'));
}
// Quarter hours per local hour between day_start and day_end: 4 normally, 0 for the hour
// a spring-forward day skips, 8 for the hour an autumn day repeats.
function quartersPerHour(meta, tz) {
    const counts = new Array(24).fill(4);
    const start = Date.parse(meta && meta.day_start);
    const end = Date.parse(meta && meta.day_end);
    if (!validZone(tz) || !(end > start) || end - start > 27 * 3600e3) return counts;
    counts.fill(0);
    const f = new Intl.DateTimeFormat('en-GB', {timeZone: tz, hour: '2-digit', hourCycle: 'h23'});
    for (let t = start; t < end; t += 900e3) {
        const part = f.formatToParts(new Date(t)).find((p) => p.type === 'hour');
        counts[parseInt(part ? part.value : '0', 10) % 24] += 1;
    }
    return counts;
}
// The time of day (with ``withDate``, its date first) in the site's zone, to the second.
function timeIn(tz, iso, withDate) {
    const when = new Date(iso);
    if (isNaN(when)) return '';
    const opts = {hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'};
    if (withDate) Object.assign(opts, {year: 'numeric', month: 'short', day: 'numeric'});
    if (validZone(tz)) opts.timeZone = tz;
    return new Intl.DateTimeFormat(undefined, opts).format(when);
}

function dateTimeIn(tz, iso) {
    const when = new Date(iso);
    if (isNaN(when)) return '';
    const opts = {dateStyle: 'medium', timeStyle: 'short'};
    if (validZone(tz)) opts.timeZone = tz;
    return new Intl.DateTimeFormat(undefined, opts).format(when);
}

export {LEVELS, LEVEL_TEXT, SOURCE_TEXT, DATE_RE, num, numberFormat, fmt, level, pad2, hourRange, humanTrigger, validZone, partsIn, todayIn, validDate, shiftDate, longDate, shortDate, quartersPerHour, timeIn, dateTimeIn};
