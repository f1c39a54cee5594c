// Page states: loading, error, unauthorised, ready/empty (main[data-state]).

import {$, setText, setAttr, show} from './dom.js';
import {state} from './state.js';
import {token} from './api.js';

// ---- page states ------------------------------------------------------------------------
const main = $('main');
function setState(name) {
    main.dataset.state = name;
    show($('loading'), name === 'loading');
    show($('error'), name === 'error');
    show($('auth'), name === 'unauthorised');
    const visible = name === 'ready' || name === 'empty' || (name === 'loading' && state.data !== null);
    show($('view'), visible && state.view === 'day');
    show($('portfolio'), visible && state.view === 'portfolio');
    show($('range'), visible && state.view === 'range');
    $('panels').classList.toggle('stale', name === 'loading');
    setAttr(main, 'aria-busy', name === 'loading' ? 'true' : null);
}
function showLoading(site, date) {
    setText($('loading-text'), 'Loading ' + site + (date ? ', ' + date : '') + '\u2026');
    setState('loading');
}
function showError(e) {
    const titles = {
        400: 'That request was refused', 404: 'Unknown site', 503: 'Storage is unavailable',
        0: 'Cannot reach the API'
    };
    const hints = {
        404: 'Pick a site from the list; a site is known once it is configured or has sent data.',
        400: 'Check the site name and the day (YYYY-MM-DD).',
        503: e.retryAfter ? 'Trying again in ' + e.retryAfter + ' s.' : 'Try again in a moment.',
        0: 'Check the network, or CONFIG.API_BASE_URL in this page.'
    };
    setText($('error-title'), titles[e.status] || (e.status >= 500 ? 'The server failed' : 'Something went wrong'));
    setText($('error-message'), e.message + (e.status ? ' (HTTP ' + e.status + ', ' + e.code + ')' : ''));
    setText($('error-hint'), hints[e.status] || '');
    main.dataset.errorStatus = String(e.status);
    setState('error');
}
function showUnauthorised(e) {
    const had = Boolean(token());
    setText($('auth-title'), had ? 'Access token refused' : 'Access token needed');
    setText($('auth-message'), had
        ? 'The API did not accept this token (HTTP ' + e.status + '). Enter another one.'
        : 'This dashboard API asks for a bearer token (HTTP ' + e.status + ').');
    state.data = null;
    state.dataKey = null;
    setState('unauthorised');
    $('token').focus();
}

export {main, setState, showLoading, showError, showUnauthorised};
