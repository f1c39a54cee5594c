// What the page shows (site, day, view) and what it knows about sites (/api/v1/sites).

import {api} from './api.js';
import {validZone, todayIn} from './format.js';

const state = {
    refreshSeconds: Number(CONFIG.REFRESH_SECONDS) || 0,
    sites: [],            // from /api/v1/sites
    site: null,
    date: null,
    dateIsDefault: true,  // true: "today" follows the site's clock (and midnight)
    tzBySite: new Map(),  // learnt from dashboard meta when /sites does not say
    data: null,           // last dashboard rendered
    dataKey: null,        // site|date of that dashboard
    selectedZone: null,
    selectedHour: null,   // day view: the floor plan at this local hour (null = the whole day)
    view: 'day',          // day | range | portfolio (?view=)
    from: null,           // range view, inclusive local dates (?from=&to=)
    to: null,
    compare: false,       // range view: compare with the previous period (?compare=previous)
    rangeZone: null,      // range view: one zone's history (?zone=, from the Zones table), else the site's
    // portfolio (?sort=): events, which every site has (utilisation needs capacities)
    sort: {key: 'events', descending: true},
    seq: 0,
    controller: null,
    timer: null,
    lastLoad: 0,
    renders: 0,
    sitesLoaded: false
};

// ---- sites ----------------------------------------------------------------------------
function siteInfo(name) {
    return state.sites.find((s) => s && s.site_name === name) || null;
}
function siteTz(name) {
    const info = siteInfo(name);
    const tz = (info && info.timezone) || state.tzBySite.get(name);
    return validZone(tz) ? tz : null;
}
function siteLabel(name) {
    const info = siteInfo(name);
    const display = info && info.display_name;
    return display && display !== name ? display + ' (' + name + ')' : name;
}
function zoneConfig(site, zone) {
    const info = siteInfo(site);
    const zones = info && info.zones && typeof info.zones === 'object' ? info.zones : {};
    return Object.prototype.hasOwnProperty.call(zones, zone) ? zones[zone] : null;
}
function zoneName(site, zone, meta) {
    const cfg = zoneConfig(site, zone);
    if (cfg && typeof cfg.display_name === 'string' && cfg.display_name && cfg.display_name !== zone) return cfg.display_name;
    if (Object.prototype.hasOwnProperty.call(CONFIG.ZONES || {}, zone)) return String(CONFIG.ZONES[zone]);
    const names = meta && meta.zone_names;
    if (names && typeof names[zone] === 'string' && names[zone]) return names[zone];
    return zone;
}

async function loadSites() {
    const controller = new AbortController();
    try {
        const body = await api('/sites', controller);
        state.sites = Array.isArray(body.sites) ? body.sites.filter((s) => s && typeof s.site_name === 'string') : [];
        state.sitesError = null;
        state.sitesLoaded = true;
    } catch (e) {
        state.sitesLoaded = false;
        if (e.status === 401 || e.status === 403) throw e;
        // Older or partial APIs: fall back to CONFIG.SITE_ID and the dashboard's own meta.
        state.sites = [];
        state.sitesError = e;
    }
}

// ---- loading ------------------------------------------------------------------------------
function viewingToday() {
    const tz = siteTz(state.site);
    return state.dateIsDefault || (tz !== null && state.date === todayIn(tz));
}

function siteThresholds(site) {
    const info = siteInfo(site);
    const th = info && info.thresholds ? info.thresholds : {};
    const high = Number(th.high), medium = Number(th.medium);
    return {high: Number.isFinite(high) && th.high !== null ? high : 7,
        medium: Number.isFinite(medium) && th.medium !== null ? medium : 4};
}
// The thresholds the API uses for a zone and where they come from, as /api/v1/sites says:
// {high, medium, origin: 'own' | 'capacity' | 'site'}.
function zoneThresholds(site, zone) {
    const cfg = zoneConfig(site, zone);
    const t = cfg && cfg.thresholds;
    const base = siteThresholds(site);
    if (!t || !Number.isFinite(Number(t.high)) || !Number.isFinite(Number(t.medium))) return Object.assign({origin: 'site'}, base);
    let origin = cfg.threshold_origin;
    if (['own', 'capacity', 'site'].indexOf(origin) < 0) {
        // An API from before threshold_origin: thresholds unlike the site's are the zone's own.
        origin = Number(t.high) !== base.high || Number(t.medium) !== base.medium ? 'own' : 'site';
    }
    return {high: Number(t.high), medium: Number(t.medium), origin: origin};
}
// The zone's thresholds when the sites file gives it its own, else null.
function ownThresholds(site, zone) {
    const th = zoneThresholds(site, zone);
    return th.origin === 'own' ? {high: th.high, medium: th.medium} : null;
}
// The site's capacity bands in percent where its intensity follows capacity, else null.
function capacityBands(site) {
    const info = siteInfo(site);
    if (!info || info.intensity !== 'capacity') return null;
    const high = Number(info.capacity_high), medium = Number(info.capacity_medium);
    return info.capacity_high !== null && Number.isFinite(high) && Number.isFinite(medium) ? {high: high, medium: medium} : null;
}
// The people a zone is meant to hold (the sites file's capacity), else null.
function zoneCapacity(site, zone) {
    const cfg = zoneConfig(site, zone);
    const c = cfg ? Number(cfg.capacity) : NaN;
    return Number.isInteger(c) && c > 0 ? c : null;
}

function zonePosition(site, zone) {
    const cfg = zoneConfig(site, zone);
    const p = cfg && cfg.position;
    if (!p || typeof p !== 'object') return null;
    const v = ['x', 'y', 'w', 'h'].map((k) => Number(p[k]));
    if (!v.every(Number.isInteger) || v[0] < 0 || v[1] < 0 || v[2] < 1 || v[3] < 1) return null;
    if (v[0] + v[2] > 48 || v[1] + v[3] > 48) return null;
    return {x: v[0], y: v[1], w: v[2], h: v[3]};
}

// Configured zones first (positioned ones in reading order), then zones seen in data.
function zoneOrder(site, zones, zoneHourly, meta) {
    const info = siteInfo(site);
    const set = new Set();
    if (info && info.zones && typeof info.zones === 'object') Object.keys(info.zones).forEach((z) => set.add(z));
    Object.keys(zones).forEach((z) => set.add(z));
    if (zoneHourly) Object.keys(zoneHourly).forEach((z) => set.add(z));
    const all = Array.from(set);
    const placed = all.filter((z) => zonePosition(site, z))
        .sort((a, b) => {
            const pa = zonePosition(site, a), pb = zonePosition(site, b);
            return pa.y - pb.y || pa.x - pb.x;
        });
    const rest = all.filter((z) => !zonePosition(site, z))
        .sort((a, b) => zoneName(site, a, meta).localeCompare(zoneName(site, b, meta)) || (a < b ? -1 : 1));
    return placed.concat(rest);
}

export {state, siteInfo, siteTz, siteLabel, zoneConfig, zoneName, loadSites, viewingToday, siteThresholds, zoneThresholds,
    ownThresholds, capacityBands, zoneCapacity, zonePosition, zoneOrder};
