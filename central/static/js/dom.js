// DOM helpers: every data string goes through textContent or setAttribute, never markup.


const $ = (id) => document.getElementById(id);

// Every data string goes through textContent or setAttribute, never markup.
function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
}
function setText(node, text) {
    const value = text === undefined || text === null ? '' : String(text);
    if (node.textContent !== value) node.textContent = value;
}
function setAttr(node, name, value) {
    if (value === null || value === undefined) {
        if (node.hasAttribute(name)) node.removeAttribute(name);
    } else if (node.getAttribute(name) !== String(value)) {
        node.setAttribute(name, String(value));
    }
}
// Text that may wrap after _ . - (cam names are long words like RECEPTION_AREA).
function setBreakable(node, text) {
    const value = String(text);
    if (node.textContent === value) return;
    while (node.firstChild) node.removeChild(node.firstChild);
    value.split(/(?<=[_.\-])/).forEach((part, i) => {
        if (i) node.appendChild(document.createElement('wbr'));
        node.appendChild(document.createTextNode(part));
    });
}
function setLevel(node, level, base) {
    const cls = (base ? base + ' ' : '') + 'i-' + level;
    if (node.className !== cls) node.className = cls;
}
function show(node, visible) { if (node.hidden === visible) node.hidden = !visible; }

// Reuse the children of ``parent`` keyed by data-key: updates land in place, focus stays.
function keyed(parent, keys, create) {
    const existing = new Map();
    Array.from(parent.children).forEach((child) => {
        if (child.dataset.key !== undefined) existing.set(child.dataset.key, child);
    });
    const nodes = keys.map((k) => {
        let node = existing.get(k);
        if (node) existing.delete(k); else { node = create(k); node.dataset.key = k; }
        return node;
    });
    existing.forEach((node) => parent.removeChild(node));
    nodes.forEach((node, i) => {
        if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
    });
    return nodes;
}

// Each body cell's data-label is its column's heading: the phone layout shows tables as
// cards, each value under its heading.
function labelCells(table) {
    const heads = Array.from(table.tHead ? table.tHead.rows[0].cells : []).map((th) => th.textContent.trim());
    Array.from(table.tBodies[0] ? table.tBodies[0].rows : []).forEach((tr) => {
        Array.from(tr.cells).forEach((cell, i) => { if (cell.tagName === 'TD') setAttr(cell, 'data-label', heads[i] || null); });
    });
}

export {$, el, setText, setAttr, setBreakable, setLevel, show, keyed, labelCells};
