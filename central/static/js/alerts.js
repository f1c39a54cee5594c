// The day view's alerts panel: the site's alerts of the day shown, from /api/v1/alerts
// (newest first), with each alert's delivery state. Its failure never hides the day.

import {$, el, setText, setAttr, show, keyed} from './dom.js';
import {timeIn, humanTrigger, partsIn, pad2, validZone} from './format.js';
import {api} from './api.js';
import {state, zoneName} from './state.js';
import {showZoneHour} from './day.js';

const LIMIT = 50;
// Every delivery state the API documents (central/openapi.json, Alert.delivery.state).
const DELIVERY_TEXT = {delivered: 'delivered', pending: 'sending', failed: 'not delivered', suppressed: 'held back',
    published: 'published (no webhook)'};

// Fetch and show the alerts of [meta.day_start, meta.day_end) at ``site``; ``seq`` is the
// page's request counter: an answer for an older request is dropped.
async function loadAlerts(site, meta, tz, controller, seq) {
    if (!meta.day_start || !meta.day_end) return;
    const path = '/alerts?site=' + encodeURIComponent(site) + '&from=' + encodeURIComponent(meta.day_start) +
        '&to=' + encodeURIComponent(meta.day_end) + '&limit=' + LIMIT;
    let alerts;
    try {
        const body = await api(path, controller);
        alerts = Array.isArray(body.alerts) ? body.alerts : [];
    } catch (e) {
        if (seq !== state.seq || (e && e.name === 'AbortError')) return;
        renderAlerts([], tz, 'Alerts could not be read: ' + (e && e.message));
        return;
    }
    if (seq !== state.seq) return;
    renderAlerts(alerts, tz, '');
}

// The local hour and minute of an ISO instant at the site.
function hourMinute(tz, iso) {
    const when = new Date(iso);
    if (isNaN(when) || !validZone(tz)) return null;
    const p = partsIn(tz, when, {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
    return {hour: parseInt(p.hour, 10) % 24, minute: parseInt(p.minute, 10)};
}

// When an alert is about: the data's 15-minute slot where the API gives it (``slot``, its
// UTC start), else the moment central judged it (said so in the tooltip).
function alertTime(a, tz) {
    const slot = typeof a.slot === 'string' ? hourMinute(tz, a.slot) : null;
    if (slot) {
        const end = (slot.hour * 60 + slot.minute + 15) % 1440;
        return {hour: slot.hour, iso: a.slot, title: 'the 15 minutes of data the alert is about',
            text: pad2(slot.hour) + ':' + pad2(slot.minute) + '\u2013' + pad2(Math.floor(end / 60)) + ':' + pad2(end % 60)};
    }
    const at = a.at ? hourMinute(tz, a.at) : null;
    return {hour: at ? at.hour : null, iso: a.at || null, title: 'when central judged the data',
        text: a.at ? timeIn(tz, a.at) : ''};
}

function renderAlerts(alerts, tz, error) {
    const list = $('alerts');
    const valid = alerts.filter((a) => a && typeof a.id === 'string');
    const nodes = keyed(list, valid.map((a) => a.id), () => {
        const li = el('li');
        li.appendChild(el('time', 'a-time'));
        li.appendChild(el('span', 'a-what'));
        li.appendChild(el('span', 'a-state'));
        const go = li.appendChild(el('button', 'plain a-go'));
        go.type = 'button';
        go.addEventListener('click', () => showZoneHour(go.dataset.zone, go.dataset.hour === '' ? null : Number(go.dataset.hour)));
        li.appendChild(el('span', 'a-message'));
        return li;
    });
    setText($('alerts-count'), error ? '' : valid.length >= LIMIT ? LIMIT + '+' : String(valid.length));
    nodes.forEach((li, i) => {
        const a = valid[i];
        const time = li.querySelector('.a-time');
        const when = alertTime(a, tz);
        setAttr(time, 'datetime', when.iso);
        setText(time, when.text);
        setAttr(time, 'title', when.title);
        const site = typeof a.site_name === 'string' && a.site_name ? a.site_name : state.site;
        const what = [a.rule, a.cam_name ? zoneName(site, a.cam_name, null) : '', a.trigger ? humanTrigger(a.trigger) : '']
            .filter(Boolean).join(' \u00b7 ');
        setText(li.querySelector('.a-what'), what);
        const delivery = a.delivery && typeof a.delivery === 'object' ? a.delivery : {};
        const st = li.querySelector('.a-state');
        setText(st, DELIVERY_TEXT[delivery.state] || String(delivery.state || ''));
        st.dataset.state = String(delivery.state || '');
        setText(li.querySelector('.a-message'), a.message || '');
        // Alerts about a zone lead to it on this day: its hours, and the plan at that hour.
        const go = li.querySelector('.a-go');
        const zone = typeof a.cam_name === 'string' && a.cam_name ? a.cam_name : null;
        show(go, zone !== null);
        go.dataset.zone = zone || '';
        go.dataset.hour = when.hour === null ? '' : String(when.hour);
        setText(go, zone ? 'Show ' + zoneName(site, zone, null) + (when.hour === null ? '' : ' at ' + pad2(when.hour) + ':00') : '');
        li.dataset.kind = String(a.kind || '');
    });
    setText($('alerts-error'), error);
    show($('alerts-error'), Boolean(error));
    show($('alerts-none'), !error && valid.length === 0);
    setText($('alerts-more'), valid.length >= LIMIT ? 'The newest ' + LIMIT + ' are shown.' : '');
}

export {loadAlerts, renderAlerts};
