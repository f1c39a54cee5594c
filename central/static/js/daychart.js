// The range view's daily chart: peak people per day as inline SVG above the day-by-day
// table, the previous period dashed (aligned day by day), weekends shaded, days without
// data left as gaps (not drawn as 0). Plain SVG: one line and one series of dots do not
// need a chart library. The table below stays the accessible form of the same numbers;
// the chart is an image with a summary.

import {$, setText} from './dom.js';
import {num, fmt, longDate, shortDate} from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 720, H = 180, LEFT = 36, RIGHT = 8, TOP = 10, BOTTOM = 24;

function svgEl(name, attrs, parent) {
    const n = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach((k) => n.setAttribute(k, String(attrs[k])));
    if (parent) parent.appendChild(n);
    return n;
}

// "M x y L x y ..." with a new "M" after each gap (a day without data).
function path(points) {
    let d = '', pen = false;
    points.forEach((p) => {
        if (p === null) { pen = false; return; }
        d += (pen ? ' L ' : (d ? ' M ' : 'M ')) + p[0].toFixed(1) + ' ' + p[1].toFixed(1);
        pen = true;
    });
    return d;
}

function weekday(day) {
    return new Date(day + 'T00:00:00Z').getUTCDay();  // 0 Sunday .. 6 Saturday
}

// series / previous: the history's day buckets; missing / prevMissing: per day, true where
// it has no data (range.js decides: before or after the data, or no contact and no events).
function renderDayChart(series, previous, missing, prevMissing) {
    const figure = $('range-chart');
    while (figure.firstChild) figure.removeChild(figure.firstChild);
    const n = series.length;
    if (!n) { figure.hidden = true; return; }
    figure.hidden = false;
    const peaks = series.map((s, i) => (missing[i] ? null : num(s.peak)));
    const prev = previous ? previous.map((s, i) => (prevMissing[i] ? null : num(s.peak))) : [];
    const top = Math.max(1, ...peaks.filter((p) => p !== null), ...prev.filter((p) => p !== null));
    const step = (W - LEFT - RIGHT) / n;
    const x = (i) => LEFT + step * (i + 0.5);
    const y = (v) => TOP + (H - TOP - BOTTOM) * (1 - v / top);
    const days = series.map((s) => String(s.start).slice(0, 10));
    const best = peaks.reduce((b, p, i) => (p !== null && (b < 0 || p > peaks[b]) ? i : b), -1);
    const svg = svgEl('svg', {viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-labelledby': 'range-chart-title',
        class: 'day-chart-svg'}, figure);
    const title = svgEl('title', {id: 'range-chart-title'}, svg);
    title.textContent = 'Peak people per day, ' + longDate(days[0]) + ' to ' + longDate(days[n - 1]) +
        (best < 0 ? ': no data.' : ': highest ' + fmt(peaks[best]) + ' on ' + longDate(days[best]) + '.') +
        (previous ? ' Dashed: the previous period.' : '') + ' Weekends shaded; the table below has every day.';
    days.forEach((day, i) => {
        const wd = weekday(day);
        if (wd === 0 || wd === 6) {
            svgEl('rect', {x: (LEFT + step * i).toFixed(1), y: TOP, width: step.toFixed(1), height: H - TOP - BOTTOM,
                class: 'weekend', 'data-day': day}, svg);
        }
    });
    // Axis: zero and the top of the scale, the first and last day (and Mondays when they fit).
    svgEl('line', {x1: LEFT, x2: W - RIGHT, y1: y(0), y2: y(0), class: 'axis'}, svg);
    [[0, y(0)], [top, y(top)]].forEach((t) => {
        setText(svgEl('text', {x: LEFT - 4, y: t[1] + 4, 'text-anchor': 'end', class: 'tick'}, svg), fmt(t[0]));
    });
    // Every day of up to two weeks; over more, the ends and the Mondays not crowding them.
    days.forEach((day, i) => {
        const end = i === 0 || i === n - 1;
        if (n > 14 && !end && (weekday(day) !== 1 || i < 3 || i > n - 4)) return;
        setText(svgEl('text', {x: x(i).toFixed(1), y: H - 6, 'text-anchor': 'middle', class: 'tick'}, svg), shortDate(day));
    });
    if (previous) {
        svgEl('path', {d: path(prev.slice(0, n).map((p, i) => (p === null ? null : [x(i), y(p)]))), class: 'prev',
            'data-points': prev.slice(0, n).filter((p) => p !== null).length}, svg);
    }
    svgEl('path', {d: path(peaks.map((p, i) => (p === null ? null : [x(i), y(p)]))), class: 'now',
        'data-points': peaks.filter((p) => p !== null).length}, svg);
    peaks.forEach((p, i) => {
        if (p === null) return;
        const dot = svgEl('circle', {cx: x(i).toFixed(1), cy: y(p).toFixed(1), r: 3, class: 'dot',
            'data-day': days[i], 'data-peak': p}, svg);
        svgEl('title', {}, dot).textContent = longDate(days[i]) + ': peak ' + fmt(p);
    });
}

export {renderDayChart};
