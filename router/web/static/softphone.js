/*
 * Shuiwu Hub — the softphone of the inbox and the wallboard: agents take calls, and supervisors listen in, in
 * the browser (WebRTC), without a desk phone.
 *
 * An account whose extension is a 浏览器软电话 gets its SIP settings from GET /api/softphone (the digest of its
 * password, never the password) and registers to Asterisk's SIP WebSocket with SIP.js (vendored from npm by the
 * setup command; ES modules loaded as they are). A call the ACD gives the agent rings here: 接听 answers it,
 * the caller's conversation opens in the inbox (screen pop, from the INVITE's X-Hub-Conversation header) and
 * 挂断 ends the agent's part; 保持 and 恢复 go through the hub (POST /api/calls/{id}/control), so the caller
 * hears the hotline's music and the call record keeps them.
 */
import { Web } from '/app/static/vendor/sip.js/index.js';

const STATUS = {
  off: '软电话未连接', connecting: '软电话连接中…', ready: '软电话就绪', ringing: '来电振铃', talking: '通话中',
  held: '通话保持中',
};

const http = StaffKit.client({ loginUrl: '/app/login?next=/app/inbox' });

// The softphone's controls, built here so that every page with a softphone (the inbox, the wallboard) has the same.
const CONTROLS = [
  ['span', 'softphone-status', 'softphone-status', ''], ['span', 'softphone-peer', 'softphone-peer', ''],
  ['button', 'btn btn-primary', 'softphone-answer', '接听'], ['button', 'btn btn-outline', 'softphone-hold', '保持'],
  ['button', 'btn btn-outline', 'softphone-resume', '恢复'], ['button', 'btn btn-danger', 'softphone-hangup', '挂断'],
];

function buildControls(root) {
  for (const [tag, className, testid, text] of CONTROLS) {
    const node = document.createElement(tag);
    node.className = className;
    node.dataset.testid = testid;
    node.textContent = text;
    if (tag === 'button') { node.type = 'button'; node.hidden = true; }
    if (testid === 'softphone-status') node.setAttribute('role', 'status');
    root.append(node);
  }
  const audio = document.createElement('audio');
  audio.dataset.testid = 'softphone-audio';
  audio.autoplay = true;
  root.append(audio);
}

class Softphone {
  constructor(root) {
    this.root = root;
    buildControls(root);
    this.status = root.querySelector('[data-testid=softphone-status]');
    this.peer = root.querySelector('[data-testid=softphone-peer]');
    this.buttons = {
      answer: root.querySelector('[data-testid=softphone-answer]'),
      hangup: root.querySelector('[data-testid=softphone-hangup]'),
      hold: root.querySelector('[data-testid=softphone-hold]'),
      resume: root.querySelector('[data-testid=softphone-resume]'),
    };
    this.audio = root.querySelector('[data-testid=softphone-audio]');
    this.session = null;
    this.callId = null;
    this.registered = false;
    this.buttons.answer.addEventListener('click', () => this.answer());
    this.buttons.hangup.addEventListener('click', () => this.hangup());
    this.buttons.hold.addEventListener('click', () => this.control('hold'));
    this.buttons.resume.addEventListener('click', () => this.control('resume'));
  }

  async start() {
    let settings;
    try {
      settings = await http.api('GET', '/api/softphone');
    } catch {
      return; // no softphone on this account: a desk phone, or none
    }
    this.root.hidden = false;
    this.show('connecting');
    this.manager = new Web.SessionManager(settings.ws_url, {
      aor: `sip:${settings.extension}@${settings.realm}`,
      media: { constraints: { audio: true, video: false }, remote: { audio: this.audio } },
      reconnectionAttempts: 1000,
      reconnectionDelay: 3,
      registrationRetry: true,
      userAgentOptions: {
        authorizationUsername: settings.extension,
        authorizationHa1: settings.ha1,
        displayName: settings.display_name,
        logLevel: 'warn',
        // The hub, Asterisk and the agents share a network: host candidates are enough, and no STUN server is
        // reached from an offline site.
        sessionDescriptionHandlerFactoryOptions: { peerConnectionConfiguration: { iceServers: [] } },
      },
      delegate: {
        onServerConnect: () => this.manager.register().catch(() => this.show('off')),
        onServerDisconnect: () => { this.registered = false; this.show('off'); },
        onRegistered: () => { this.registered = true; if (!this.session) this.show('ready'); },
        onUnregistered: () => { this.registered = false; this.show('off'); },
        onCallReceived: (session) => this.ring(session),
        onCallAnswered: () => this.show('talking'),
        onCallHangup: () => this.ended(),
      },
    });
    await this.manager.connect().catch(() => this.show('off'));
  }

  ring(session) {
    if (this.session) { // one call at a time: the ACD gives a call to an agent with nothing else open
      this.manager.decline(session).catch(() => {});
      return;
    }
    this.session = session;
    const request = session.request;
    this.callId = request.getHeader('X-Hub-Call') || null;
    const conversationId = Number(request.getHeader('X-Hub-Conversation')) || null;
    this.peer.textContent = session.remoteIdentity.uri.user || '未显示号码';
    this.show('ringing');
    window.dispatchEvent(new CustomEvent('softphone:ringing', { detail: { conversationId, callId: this.callId } }));
  }

  async answer() {
    if (!this.session) return;
    this.buttons.answer.disabled = true; // a double click answers once
    try {
      await this.manager.answer(this.session);
    } catch (err) {
      this.buttons.answer.disabled = false;
      this.peer.textContent = `接听失败：${err.message}`;
    }
  }

  async hangup() {
    if (this.session) await this.manager.hangup(this.session).catch(() => {});
  }

  async control(action) {
    if (!this.callId) return;
    try {
      const state = await http.api('POST', `/api/calls/${this.callId}/control`, { action });
      this.show(state.held ? 'held' : 'talking');
    } catch (err) {
      this.peer.textContent = err.message;
    }
  }

  ended() {
    this.session = null;
    this.callId = null;
    this.peer.textContent = '';
    this.show(this.registered ? 'ready' : 'off');
  }

  show(state) {
    this.root.dataset.state = state;
    this.status.textContent = STATUS[state];
    this.buttons.answer.hidden = state !== 'ringing';
    this.buttons.answer.disabled = false;
    this.buttons.hangup.hidden = !['ringing', 'talking', 'held'].includes(state);
    this.buttons.hold.hidden = state !== 'talking';
    this.buttons.resume.hidden = state !== 'held';
  }
}

const root = document.querySelector('[data-testid=softphone]');
if (root) {
  window.softphone = new Softphone(root);
  window.softphone.start();
}
