// vicibridge dialer widget: one script for the HubSpot calling app, the Salesforce Open CTI
// softphone and the plain /dialer page. The agent's session (signed by vicibridge) is kept in
// this frame's storage and sent as a Bearer token; no cookies, no CRM token.
'use strict';
(function () {
  const KEY = 'vicibridge.session';
  const body = document.body;
  const surface = body.dataset.surface;
  const $ = (id) => document.getElementById(id);

  function show(state, status, detail, buttons) {
    body.dataset.state = state;
    const s = $('status');
    if (!s) return;
    s.textContent = status;
    s.className = { ready: 'ready', dialling: 'busy', 'on-call': 'busy', queued: 'ready', done: 'ready', error: 'error', 'signed-out': '' }[state] || '';
    $('detail').textContent = detail || '';
    const actions = $('actions');
    actions.replaceChildren();
    for (const [label, fn, cls] of buttons || []) {
      const b = document.createElement('button');
      b.textContent = label;
      if (cls) b.className = cls;
      b.addEventListener('click', fn);
      actions.appendChild(b);
    }
  }

  // --- the sign-in popup's last page: hand the session to the widget that opened it ---------
  if (surface === 'signed-in') {
    if (window.opener) {
      window.opener.postMessage({ type: 'vicibridge-session', session: body.dataset.session, agent: body.dataset.agent }, location.origin);
      setTimeout(() => window.close(), 300);
    }
    return;
  }

  function session() {
    try {
      const raw = localStorage.getItem(KEY);
      if (!raw) return null;
      const s = JSON.parse(raw);
      // The token's own expiry is checked by the server; this only avoids a useless click.
      const exp = JSON.parse(atob(s.session.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).exp;
      return exp * 1000 > Date.now() ? s : null;
    } catch (e) {
      return null;
    }
  }
  function store(s) {
    try { localStorage.setItem(KEY, JSON.stringify(s)); } catch (e) { /* storage blocked: session lasts the page */ }
    memory = s;
  }
  function forget() {
    try { localStorage.removeItem(KEY); } catch (e) { /* nothing stored */ }
    memory = null;
  }
  let memory = null;
  const current = () => session() || memory;

  // Following a dialled call (HubSpot): ask every 3 s; a dial the agent screen has not placed
  // after 30 s failed; stop following after 4 hours whatever happens.
  const POLL_MS = 3000;
  const NOT_PLACED_MS = 30000;
  const FOLLOW_MAX_MS = 4 * 3600 * 1000;

  const crms = (body.dataset.signIn || '').split(' ').filter(Boolean);
  const names = { hubspot: 'HubSpot', salesforce: 'Salesforce' };
  let onSignedIn = () => {};

  function signIn(crm) {
    window.open('/agent/oauth/' + crm + '/start', 'vicibridge-sign-in', 'width=520,height=680');
  }
  window.addEventListener('message', (ev) => {
    if (ev.origin !== location.origin || !ev.data || ev.data.type !== 'vicibridge-session') return;
    store({ session: ev.data.session, agent: ev.data.agent });
    onSignedIn();
  });

  function signedOut(detail) {
    show('signed-out', 'Sign in to dial with VICIdial', detail || '',
      crms.map((c) => ['Sign in with ' + (names[c] || c), () => signIn(c)]));
  }
  function ready() {
    const s = current();
    show('ready', 'Ready', 'VICIdial agent ' + s.agent + '. Click a phone number to dial it.',
      [['Sign out', () => { forget(); signedOut(); }, 'secondary']]);
  }

  async function dial(request) {
    const s = current();
    if (!s) { signedOut('Your session has ended.'); return { ok: false, code: 'sign_in', message: 'Sign in to dial.' }; }
    show('dialling', 'Dialling ' + request.phone + '…', 'Asking VICIdial to place the call on your agent screen.');
    let answer;
    try {
      const r = await fetch('/agent/dial', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer ' + s.session },
        body: JSON.stringify(request),
      });
      answer = await r.json();
    } catch (e) {
      answer = { ok: false, code: 'network', message: 'vicibridge did not answer. Check your connection and try again.' };
    }
    if (answer.ok) {
      show('queued', 'Calling ' + request.phone, answer.message,
        [['Sign out', () => { forget(); signedOut(); }, 'secondary']]);
    } else if (answer.code === 'sign_in') {
      forget();
      signedOut(answer.message);
    } else {
      show('error', "Couldn't dial " + request.phone, answer.message, [['OK', ready, 'secondary']]);
    }
    return answer;
  }

  // --- HubSpot calling extension ------------------------------------------------------------
  if (surface === 'hubspot') {
    const CallingExtensions = window.default;
    if (typeof CallingExtensions !== 'function') {
      show('error', 'The HubSpot calling SDK did not load', 'Ask your admin to check the dialer configuration (SDK URL and integrity).');
      return;
    }
    let cti = null;
    cti = new CallingExtensions({
      debugMode: false,
      eventHandlers: {
        onReady: () => {
          cti.initialized({ isLoggedIn: !!current() });
          if (current()) ready(); else signedOut();
        },
        onDialNumber: async (data) => {
          const answer = await dial({
            phone: String(data.phoneNumber || ''),
            record_id: data.objectId != null ? String(data.objectId) : undefined,
            record_type: data.objectType ? String(data.objectType).toLowerCase() : undefined,
          });
          if (answer.ok) {
            // The VICIdial call is logged by vicibridge's sync (keyed by its uniqueid): HubSpot
            // must not create a second call record for it.
            cti.outgoingCall({ externalCallId: answer.dial_id, toNumber: String(data.phoneNumber || ''), callStartTime: Date.now(), createEngagement: false });
            follow(answer.dial_id, String(data.phoneNumber || ''));
          } else {
            cti.sendError({ message: answer.message });
          }
        },
        // HubSpot's end button cannot hang up VICIdial's call: stop following it and say where.
        onEndCall: () => {
          if (followed) end(followed, followed.answered ? 'COMPLETED' : 'CANCELED');
          ready();
        },
        defaultEventHandler: () => {},
      },
    });
    // VICIdial places the call from the agent screen, so HubSpot's call bar learns how it goes
    // from VICIdial's agent state: answered, then ended (hung up or dispositioning).
    let followed = null;
    function end(call, status) {
      clearTimeout(call.timer);
      if (followed === call) followed = null;
      cti.callEnded({ externalCallId: call.id, callEndStatus: status });
      cti.callCompleted({ externalCallId: call.id, hideWidget: false });
    }
    function follow(id, phone) {
      if (followed) end(followed, 'CANCELED');
      const call = { id, phone, started: Date.now(), seen: false, answered: false, timer: 0 };
      followed = call;
      const poll = async () => {
        if (followed !== call) return;
        let state = null;
        const s = current();
        if (!s) { end(call, 'CANCELED'); signedOut('Your session has ended.'); return; }
        try {
          const r = await fetch('/agent/state', { headers: { authorization: 'Bearer ' + s.session } });
          const a = await r.json();
          if (r.status === 401) { end(call, 'CANCELED'); forget(); signedOut(a.message); return; }
          if (a.ok) state = a.state;
        } catch (e) { /* vicibridge or VICIdial did not answer: ask again */ }
        if (followed !== call) return;
        const waited = Date.now() - call.started;
        if (state === 'ringing') call.seen = true;
        if (state === 'on_call') {
          call.seen = true;
          if (!call.answered) {
            call.answered = true;
            cti.callAnswered({ externalCallId: id });
            show('on-call', 'On the call with ' + phone, 'Hang up and disposition on your VICIdial agent screen.',
              [['Sign out', () => { forget(); signedOut(); }, 'secondary']]);
          }
        }
        const over = state === 'ended' || state === 'logged_out' || (state === 'free' && call.seen);
        if (over || (state === 'free' && waited > NOT_PLACED_MS) || waited > FOLLOW_MAX_MS) {
          end(call, call.answered ? 'COMPLETED' : state === 'logged_out' || !call.seen ? 'FAILED' : 'NO_ANSWER');
          ready();
          return;
        }
        call.timer = setTimeout(poll, POLL_MS);
      };
      call.timer = setTimeout(poll, POLL_MS);
    }
    onSignedIn = () => { cti.userLoggedIn(); ready(); };
    show('loading', 'Connecting to HubSpot…', '');
    return;
  }

  // --- Salesforce Open CTI softphone --------------------------------------------------------
  if (surface === 'salesforce') {
    const opencti = window.sforce && window.sforce.opencti;
    if (!opencti) {
      show('error', 'Salesforce Open CTI did not load', 'Open this softphone from Salesforce (the call center adapter URL).');
      return;
    }
    opencti.enableClickToDial({ callback: () => {} });
    opencti.onClickToDial({
      listener: (payload) => {
        opencti.setSoftphonePanelVisibility({ visible: true, callback: () => {} });
        dial({ phone: String(payload.number || ''), record_id: payload.recordId || undefined, record_type: payload.objectType ? String(payload.objectType).toLowerCase() : undefined });
      },
    });
    onSignedIn = ready;
    if (current()) ready(); else signedOut();
    return;
  }

  // --- plain /dialer?phone=…&record_id=… ----------------------------------------------------
  const params = new URLSearchParams(location.search);
  const phone = params.get('phone') || '';
  const request = { phone, record_id: params.get('record_id') || undefined, record_type: params.get('record_type') || undefined };
  async function go() {
    if (!phone) { ready(); return; }
    const answer = await dial(request);
    if (!answer.ok) return;
    // Done: the call is on the agent screen. A window the CRM opened closes itself; one the
    // browser will not let a script close (a tab the agent opened) says it can be closed.
    show('done', 'Calling ' + phone, answer.message + ' You can close this window.');
    setTimeout(() => window.close(), 1500);
  }
  onSignedIn = go;
  if (current()) go(); else signedOut();
})();
