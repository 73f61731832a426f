// pyexec playground: posts the form to execute?stream=1 (relative, so the
// page works under any prefix), shows the output as the program writes it
// (Server-Sent Events), then the result event: the JSON form's body. No
// dependencies.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $('run-form');
  const extra = $('extra-files');
  const result = $('result');
  const errorBox = $('error');
  let fileCount = 0;
  let runs = 0;
  let blobUrls = [];

  // --- editors: Tab inserts four spaces (Esc then Tab moves focus on)
  function codeEditor(textarea) {
    let escaped = false;
    textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') { escaped = true; return; }
      if (ev.key === 'Tab' && !escaped && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
        ev.preventDefault();
        textarea.setRangeText('    ', textarea.selectionStart, textarea.selectionEnd, 'end');
      } else if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        form.requestSubmit();
      }
      escaped = false;
    });
  }
  codeEditor($('main-py'));

  // --- other files: a name and a content each, removable
  function addFile(name, content) {
    const n = ++fileCount;
    const box = document.createElement('fieldset');
    box.className = 'extra-file';
    const legend = document.createElement('legend');
    legend.textContent = 'File ' + (n + 1);
    const nameLabel = document.createElement('label');
    nameLabel.htmlFor = 'file-name-' + n;
    nameLabel.textContent = 'Name';
    const nameInput = document.createElement('input');
    nameInput.id = 'file-name-' + n;
    nameInput.className = 'file-name';
    nameInput.type = 'text';
    nameInput.placeholder = 'helper.py or data/input.csv';
    nameInput.spellcheck = false;
    nameInput.autocomplete = 'off';
    nameInput.value = name || '';
    const contentLabel = document.createElement('label');
    contentLabel.htmlFor = 'file-content-' + n;
    contentLabel.textContent = 'Content';
    const contentArea = document.createElement('textarea');
    contentArea.id = 'file-content-' + n;
    contentArea.className = 'code file-content';
    contentArea.rows = 6;
    contentArea.spellcheck = false;
    contentArea.value = content || '';
    codeEditor(contentArea);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'remove-file';
    remove.textContent = 'Remove';
    const label = () => 'Remove file ' + (nameInput.value || (n + 1));
    remove.setAttribute('aria-label', label());
    nameInput.addEventListener('input', () => remove.setAttribute('aria-label', label()));
    remove.addEventListener('click', () => { box.remove(); $('add-file').focus(); });
    box.append(legend, nameLabel, nameInput, contentLabel, contentArea, remove);
    extra.append(box);
    nameInput.focus();
  }
  $('add-file').addEventListener('click', () => addFile());

  // --- showing a reply
  function show(el, text) {
    el.textContent = text;
    el.classList.toggle('empty', text === '');
    if (text === '') el.textContent = '(empty)';
  }

  function bytesOf(file) {
    if (file.encoding === 'base64') {
      const bin = atob(file.content);
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    }
    return new TextEncoder().encode(file.content);
  }

  // stdout and stderr come as base64 when they are not printable UTF-8:
  // shown decoded, invalid sequences as U+FFFD, control bytes as they are.
  function textOf(content, encoding) {
    if (!content) return '';
    return new TextDecoder().decode(bytesOf({ content, encoding }));
  }

  function base64Of(bytes) {
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(bin);
  }

  function fileItem(file) {
    const li = document.createElement('li');
    const type = (file.content_type || 'application/octet-stream').split(';')[0].trim();
    const info = document.createElement('span');
    info.className = 'file-info';
    info.textContent = ' ' + file.content_type + ', ' + file.size + ' bytes';
    const bytes = bytesOf(file);
    const blob = new Blob([bytes], { type: type });
    const url = URL.createObjectURL(blob);
    blobUrls.push(url);
    const link = document.createElement('a');
    link.href = url;
    link.download = file.name.split('/').pop();
    link.textContent = file.name;
    link.className = 'file-link';
    li.append(link, info);
    if (/^image\//.test(type)) {
      const img = document.createElement('img');
      img.src = 'data:' + type + ';base64,' +
        (file.encoding === 'base64' ? file.content : base64Of(bytes));
      img.alt = file.name;
      li.append(img);
    }
    return li;
  }

  function showResult(data) {
    const status = $('status');
    status.textContent = data.status;
    status.className = 'status status-' + String(data.status).replace(/[^a-z_]/g, '');
    $('exit').textContent = data.signal ? 'signal ' + data.signal
      : data.exit_code !== null && data.exit_code !== undefined ? 'exit code ' + data.exit_code : '';
    const t = data.time || {};
    const parts = [];
    if (typeof t.wall === 'number') parts.push('wall ' + t.wall.toFixed(3) + ' s');
    if (typeof t.cpu === 'number') parts.push('CPU ' + t.cpu.toFixed(3) + ' s');
    if (typeof data.max_rss_kib === 'number') parts.push((data.max_rss_kib / 1024).toFixed(1) + ' MiB peak');
    if (data.dependencies && data.dependencies !== 'none') parts.push('dependencies ' + data.dependencies);
    $('times').textContent = parts.join(' · ');
    const trunc = data.truncated || [];
    $('truncated').hidden = trunc.length === 0;
    $('truncated').textContent = trunc.length
      ? 'Truncated at the server\'s limit: ' + trunc.join(', ') + '.' : '';
    show($('stdout'), textOf(data.stdout, data.stdout_encoding));
    show($('stderr'), textOf(data.stderr, data.stderr_encoding));
    const list = $('files');
    list.replaceChildren(...(data.files || []).map(fileItem));
    $('files-section').hidden = list.children.length === 0;
    result.hidden = false;
  }

  // --- live output: each stdout and stderr event appended as it comes
  function liveStart() {
    const status = $('status');
    status.textContent = 'running';
    status.className = 'status status-running';
    $('exit').textContent = '';
    $('times').textContent = '';
    $('truncated').hidden = true;
    $('files').replaceChildren();
    $('files-section').hidden = true;
    for (const id of ['stdout', 'stderr']) {
      $(id).textContent = '';
      $(id).classList.remove('empty');
    }
    result.hidden = false;
    // a decoder per output: base64 pieces may end inside a character
    return { stdout: new TextDecoder(), stderr: new TextDecoder() };
  }

  function liveAppend(decoders, name, piece) {
    const bytes = piece.encoding === 'base64' ? bytesOf({ content: piece.data, encoding: 'base64' })
      : new TextEncoder().encode(piece.data);
    $(name).textContent += decoders[name].decode(bytes, { stream: true });
  }

  // Reads the event stream to its end: the result event's data, or an
  // error event's ({detail, error}), or null when it ended without one.
  async function readEvents(res) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const decoders = liveStart();
    let buffer = '';
    let last = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return last;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length === 0) continue;      // a comment: the server's beat
        const doc = JSON.parse(data.join('\n'));
        if (name === 'stdout' || name === 'stderr') liveAppend(decoders, name, doc);
        else if (name === 'result' || name === 'error') last = { name, doc };
      }
    }
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  // --- the interpreters: a choice when the server has more than one
  // (/healthz lists them, the default first)
  async function loadPythons() {
    let pythons = [];
    try {
      const res = await fetch('healthz', { headers: { Accept: 'application/json' } });
      if (res.ok) pythons = (await res.json()).pythons || [];
    } catch (e) { /* no choice offered: the server's default runs */ }
    if (pythons.length < 2) return;
    const select = $('python');
    for (const p of pythons) {
      const opt = document.createElement('option');
      opt.value = p.name;
      const version = (p.version || '').split(' ')[0];
      opt.textContent = p.name + (version ? ' (' + version + ')' : '');
      select.append(opt);
    }
    $('python-field').hidden = false;
  }
  loadPythons();

  // --- running
  function buildForm() {
    const fd = new FormData();
    fd.append('files', new Blob([$('main-py').value], { type: 'text/x-python' }), 'main.py');
    for (const box of extra.querySelectorAll('.extra-file')) {
      const name = box.querySelector('.file-name').value.trim();
      if (!name) throw new Error('Every added file needs a name.');
      fd.append('files', new Blob([box.querySelector('.file-content').value]), name);
    }
    if ($('stdin').value !== '') fd.append('stdin', $('stdin').value);
    return fd;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = $('run');
    if (button.disabled) return;
    errorBox.hidden = true;
    let fd;
    try {
      fd = buildForm();
    } catch (e) {
      showError(e.message);
      return;
    }
    const query = new URLSearchParams({ stream: '1' });
    const deps = $('dependencies').value.trim();
    const timeout = $('timeout').value.trim();
    if (deps) query.set('dependencies', deps);
    if (timeout) query.set('timeout', timeout);
    if (!$('python-field').hidden && $('python').value) query.set('python', $('python').value);
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    $('busy').textContent = 'Running…';
    try {
      const res = await fetch('execute?' + query, {
        method: 'POST', body: fd, headers: { Accept: 'text/event-stream' },
      });
      let data = null;
      for (const u of blobUrls) URL.revokeObjectURL(u);
      blobUrls = [];
      if (/^text\/event-stream/.test(res.headers.get('Content-Type') || '')) {
        const last = await readEvents(res);
        data = last ? last.doc : { detail: 'the stream ended without a result' };
      } else {
        // an error before the run: JSON (or the web server's own page)
        const text = await res.text();
        try { data = JSON.parse(text); } catch (e) { /* not JSON */ }
      }
      if (data && typeof data.status === 'string' && 'stdout' in data) {
        showResult(data);          // 200, or 424 with pip's output as stderr
      } else if (data && data.detail) {
        result.hidden = true;
        showError('HTTP ' + res.status + (data.error ? ' (' + data.error + ')' : '') + ': ' + data.detail);
      } else {
        result.hidden = true;
        showError('HTTP ' + res.status + ' ' + res.statusText + ': the server gave no JSON reply.');
      }
      $('busy').textContent = 'Done.';
    } catch (e) {
      showError('The request failed: ' + e.message);
      $('busy').textContent = '';
    } finally {
      button.disabled = false;
      form.removeAttribute('aria-busy');
      result.dataset.runs = String(++runs);
    }
  });
})();
