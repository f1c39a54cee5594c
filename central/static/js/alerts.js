// The day view's alerts panel: the site's alerts of the day shown, from /api/v1/alerts
// (newest first), with each alert's delivery state. Its failure never hides the day.

import {$, el, setText, setAttr, show, keyed} from './dom.js';
import {timeIn, humanTrigger} from './format.js';
import {api} from './api.js';
import {state, zoneName} from './state.js';

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

function renderAlerts(alerts, tz, error) {
    const list = $('alerts');
    const valid = alerts.filter((a) => a && typeof a.id === 'string');
    const nodes = keyed(list, valid.map((a) => a.id), () => {
        const li = el('li');
        li.appendChild(el('time', 'a-time'));
        li.appendChild(el('span', 'a-what'));
        li.appendChild(el('span', 'a-state'));
        li.appendChild(el('span', 'a-message'));
        return li;
    });
    nodes.forEach((li, i) => {
        const a = valid[i];
        const time = li.querySelector('.a-time');
        setAttr(time, 'datetime', a.at || null);
        setText(time, a.at ? timeIn(tz, a.at) : '');
        const site = typeof a.site_name === 'string' && a.site_name ? a.site_name : state.site;
        const what = [a.rule, a.cam_name ? zoneName(site, a.cam_name, null) : '', a.trigger ? humanTrigger(a.trigger) : '']
            .filter(Boolean).join(' \u00b7 ');
        setText(li.querySelector('.a-what'), what);
        const delivery = a.delivery && typeof a.delivery === 'object' ? a.delivery : {};
        const st = li.querySelector('.a-state');
        setText(st, DELIVERY_TEXT[delivery.state] || String(delivery.state || ''));
        st.dataset.state = String(delivery.state || '');
        setText(li.querySelector('.a-message'), a.message || '');
        li.dataset.kind = String(a.kind || '');
    });
    setText($('alerts-error'), error);
    show($('alerts-error'), Boolean(error));
    show($('alerts-none'), !error && valid.length === 0);
    setText($('alerts-more'), valid.length >= LIMIT ? 'The newest ' + LIMIT + ' are shown.' : '');
}

export {loadAlerts, renderAlerts};
