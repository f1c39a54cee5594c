// The typical band on the day view: behind each bar of the hourly strip the band of that
// weekday and hour (low to high, a line at the median) from /api/v1/typical, beside the
// strip's title "+35 % vs a typical Tuesday" (or "usual") from its vs_typical, and each
// tile's "vs a typical Tuesday". Every number comes from the API; this module only draws
// them, after the day view has drawn (showTypical). Today's `now` is the tiles' own (day.js).

import {$, el, setText, setAttr} from './dom.js';
import {api} from './api.js';
import {fmt, num} from './format.js';

// 'site|date|zone' -> {doc (null while asked), at}: today's is asked again after a minute
// (its vs_typical is the day so far); other days' bands do not change while one looks.
const answers = new Map();
const TODAY_MS = 60000;
let wanted = null;  // the key the day view shows now
let controller = null;

function keyOf(site, date, zone) { return site + '|' + date + '|' + (zone || ''); }

function isBand(h) { return h && Number.isInteger(h.hour) && h.median !== null && h.median !== undefined; }

// A vs_typical ratio as "+35 %", "\u221220 %" or "usual" (it rounds to 0 %); null for none.
function change(ratio) {
    if (ratio === null || ratio === undefined || !Number.isFinite(Number(ratio))) return null;
    const pct = Math.round((Number(ratio) - 1) * 100);
    return pct === 0 ? 'usual' : (pct > 0 ? '+' : '\u2212') + Math.abs(pct) + ' %';
}

// "+35 % vs a typical Tuesday", "usual for a Tuesday", '' without a band.
function versus(doc) {
    const c = doc ? change(doc.vs_typical) : null;
    if (c === null) return '';
    return c === 'usual' ? 'usual for a ' + doc.weekday : c + ' vs a typical ' + doc.weekday;
}

// The portfolio's Now and vs typical cells of one overview row.
function portfolioCells(tr, row, nowCell, vsCell) {
    const now = Number.isInteger(row.now_peak) ? row.now_peak : null;
    setText(nowCell, now === null ? '\u2013' : fmt(now));
    tr.dataset.nowPeak = now === null ? '' : String(now);
    const c = change(row.vs_typical);
    setText(vsCell, c === null ? '\u2013' : c);
    setAttr(vsCell, 'title', c === null ? 'No typical band for this day yet' : 'The day so far against a typical ' +
        'day of that weekday (sum of hourly peaks against the typical medians)');
    tr.dataset.vsTypical = c === null ? '' : String(row.vs_typical);
}

function note() {
    let node = $('typical-note');
    if (!node) {
        const title = $('hourly-title');
        if (!title) return null;
        node = el('span', 'typical-note');
        node.id = 'typical-note';
        node.style.marginLeft = '0.6rem';
        node.style.fontSize = '0.85rem';
        node.style.fontWeight = '600';
        title.appendChild(node);
    }
    return node;
}

function drawBand(doc) {
    const strip = $('strip');
    if (!strip) return;
    const max = num(strip.dataset.max);
    const byHour = new Map();
    (doc && Array.isArray(doc.hourly) ? doc.hourly : []).forEach((h) => { if (isBand(h)) byHour.set(h.hour, h); });
    Array.from(strip.children).forEach((li) => {
        const h = byHour.get(Number(li.dataset.hour));
        const track = li.querySelector('.h-track');
        const btn = li.querySelector('.h-btn');
        if (!track || !btn) return;
        let band = track.querySelector('.h-band');
        let median = track.querySelector('.h-median');
        let more = btn.querySelector('.h-typical');
        if (!band) {
            track.style.position = 'relative';
            const bar = track.querySelector('.h-bar');
            if (bar) { bar.style.position = 'relative'; bar.style.zIndex = '1'; }
            band = track.appendChild(el('span', 'h-band'));
            band.style.cssText = 'position:absolute;left:8%;right:8%;z-index:0;background:rgba(90,100,120,0.22);border-radius:2px;';
            median = track.appendChild(el('span', 'h-median'));
            median.style.cssText = 'position:absolute;left:0;right:0;z-index:2;border-top:2px dashed rgba(40,45,60,0.75);height:0;';
            more = btn.appendChild(el('span', 'h-typical visually-hidden'));
        }
        const at = (v) => (max > 0 ? Math.min(100, Math.max(0, num(v) / max * 100)) : 0);
        band.hidden = median.hidden = !h;
        if (h) {
            band.style.bottom = at(h.low) + '%';
            band.style.height = Math.max(1, at(h.high) - at(h.low)) + '%';
            median.style.bottom = at(h.median) + '%';
        }
        li.dataset.low = h ? String(h.low) : '';
        li.dataset.median = h ? String(h.median) : '';
        li.dataset.high = h ? String(h.high) : '';
        setText(more, h ? ' Typical ' + fmt(h.low) + ' to ' + fmt(h.high) + ', median ' + fmt(h.median) + '.' : '');
        const title = li.getAttribute('title') || '';
        const base = title.split('\nTypical')[0];
        setAttr(li, 'title', h ? base + '\nTypical ' + fmt(h.low) + '\u2013' + fmt(h.high) + ' (median ' + fmt(h.median) +
            ', ' + h.days + ' days)' : base);
    });
    const node = note();
    if (node) {
        setText(node, versus(doc));
        node.dataset.vs = doc && doc.vs_typical !== null && doc.vs_typical !== undefined ? String(doc.vs_typical) : '';
    }
    strip.dataset.typical = doc ? 'shown' : 'none';
}

// Each tile: its zone's day (so far) against its typical, from the site-wide answer.
function drawTiles(doc) {
    const per = doc && doc.zones_vs_typical && typeof doc.zones_vs_typical === 'object' ? doc.zones_vs_typical : {};
    document.querySelectorAll('#plan button[data-zone]').forEach((b) => {
        const c = change(per[b.dataset.zone]);
        let node = b.querySelector('.z-typical');
        if (c === null) {
            if (node) node.remove();
            b.dataset.vsTypical = '';
            return;
        }
        if (!node) node = b.insertBefore(el('span', 'z-typical'), b.querySelector('.z-foot'));
        node.style.display = 'block';
        node.style.fontSize = '0.8rem';
        setText(node, c === 'usual' ? 'usual for a ' + doc.weekday : c + ' vs a typical ' + doc.weekday);
        b.dataset.vsTypical = String(per[b.dataset.zone]);
    });
}

// After the day view drew ``data`` (site, its date, the selected zone or null).
function showTypical(data, site, zone) {
    const date = data && typeof data.date === 'string' ? data.date : '';
    if (!site || !date) return;
    const key = keyOf(site, date, zone);
    wanted = key;
    const whole = answers.get(keyOf(site, date, ''));
    drawTiles(whole ? whole.doc : null);
    const known = answers.get(key);
    if (known) {
        if (known.doc) drawBand(known.doc);
        if (!known.doc || !data.now || Date.now() - known.at < TODAY_MS) return;
    } else {
        drawBand(null);
    }
    if (answers.size > 50) answers.delete(answers.keys().next().value);
    answers.set(key, {doc: known ? known.doc : null, at: Date.now()});
    if (controller) controller.abort();
    controller = new AbortController();
    const path = '/typical/' + encodeURIComponent(site) + '?date=' + date + (zone ? '&zone=' + encodeURIComponent(zone) : '');
    api(path, controller).then((doc) => {
        answers.set(key, {doc: doc, at: Date.now()});
        if (wanted === key) {
            drawBand(doc);
            if (!zone) drawTiles(doc);
        }
    }).catch(() => { answers.delete(key); });  // the band is extra: the day view stands without it
}

export {showTypical, versus, portfolioCells};
