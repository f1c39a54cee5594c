// The export button: downloads what is shown as CSV through GET /api/v1/export. The request
// carries the bearer token, so it is fetched and handed to the browser as a blob, not linked.

import {$, setText, setAttr} from './dom.js';
import {base, token} from './api.js';
import {state} from './state.js';

// What is shown: the day view's hours (one day), or the range view's days.
function exportPath() {
    const site = encodeURIComponent(state.site);
    if (state.view === 'range' && state.from && state.to) {
        return '/export/' + site + '?from=' + state.from + '&to=' + state.to + '&bucket=day&format=csv';
    }
    const day = state.data && typeof state.data.date === 'string' ? state.data.date : state.date;
    const zone = state.selectedZone ? '&zone=' + encodeURIComponent(state.selectedZone) : '';
    return '/export/' + site + '?from=' + day + '&to=' + day + '&bucket=hour&format=csv' + zone;
}

async function exportShown() {
    const button = $('export');
    if (!state.site || button.disabled) return;
    const path = exportPath();
    button.disabled = true;
    setText(button, 'Exporting\u2026');
    try {
        const headers = {};
        const t = token();
        if (t) headers.Authorization = 'Bearer ' + t;
        const resp = await fetch(base + path, {headers: headers, cache: 'no-store'});
        if (!resp.ok) {
            let message = 'HTTP ' + resp.status;
            try { const body = await resp.json(); message = body.error.message || message; } catch (e) { /* not JSON */ }
            throw new Error(message);
        }
        const blob = await resp.blob();
        const match = /filename="([^"]+)"/.exec(resp.headers.get('Content-Disposition') || '');
        const a = document.createElement('a');
        a.href = URL.createObjectURL(blob);
        a.download = match ? match[1] : 'export.csv';
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 10000);
        setAttr(button, 'title', 'Downloaded ' + a.download);
        button.dataset.lastExport = path;
    } catch (e) {
        setAttr(button, 'title', 'Export failed: ' + e.message);
        button.dataset.lastExport = 'failed: ' + e.message;
    } finally {
        button.disabled = false;
        setText(button, 'Export CSV');
    }
}

export {exportPath, exportShown};
