// The sketchpad of `sheep app` (run by Gradio's gr.HTML, which gives `element` and `props`).
// It keeps the drawing as strokes, as Quick, Draw! does, and hands them to Python as JSON when a
// stroke ends: setting props.value fires the component's change event. The eraser removes the
// points it passes over, splitting strokes there.
const canvas = element.querySelector('canvas'), ctx = canvas.getContext('2d');
const PEN = 6, ERASER = 14;
let strokes = [], current = null, tool = 'pen';
function at(e) { const r = canvas.getBoundingClientRect();
  return [Math.round((e.clientX - r.left) * canvas.width / r.width), Math.round((e.clientY - r.top) * canvas.height / r.height)]; }
function redraw() {
  ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = '#000'; ctx.lineWidth = PEN; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
  for (const s of strokes) { ctx.beginPath(); s.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (s.length === 1) ctx.lineTo(s[0][0] + 0.1, s[0][1]); ctx.stroke(); } }
function erase([x, y]) { const kept = [];
  for (const s of strokes) { let run = [];
    for (const p of s) { if ((p[0] - x) ** 2 + (p[1] - y) ** 2 > ERASER ** 2) run.push(p); else { if (run.length) kept.push(run); run = []; } }
    if (run.length) kept.push(run); }
  strokes = kept; }
function send() { props.value = JSON.stringify(strokes); }
function use(name) { tool = name; element.querySelectorAll('.pen, .eraser').forEach((b) => b.classList.toggle('on', b.classList.contains(name))); }
canvas.addEventListener('pointerdown', (e) => { canvas.setPointerCapture(e.pointerId); const p = at(e);
  if (tool === 'pen') { current = [p]; strokes.push(current); } else { current = true; erase(p); } redraw(); });
canvas.addEventListener('pointermove', (e) => { if (!current) return; const p = at(e);
  if (tool === 'pen') current.push(p); else erase(p); redraw(); });
canvas.addEventListener('pointerup', () => { if (current) { current = null; send(); } });
element.querySelector('.pen').addEventListener('click', () => use('pen'));
element.querySelector('.eraser').addEventListener('click', () => use('eraser'));
element.querySelector('.clear').addEventListener('click', () => { strokes = []; redraw(); send(); });
redraw();
canvas.dataset.ready = 'yes';  // listening: a stroke drawn before this would be lost
