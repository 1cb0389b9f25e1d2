/*
 * Shuiwu Hub — the softphone of the inbox and the wallboard: agents take calls, and supervisors listen in, in
 * the browser (WebRTC), without a desk phone.
 *
 * An account whose extension is a 浏览器软电话 gets its SIP settings from GET /api/softphone (the digest of its
 * password, never the password) and registers to Asterisk's SIP WebSocket with SIP.js (vendored from npm by the
 * setup command; ES modules loaded as they are). A call the ACD gives the agent rings here: 接听 answers it,
 * the caller's conversation opens in the inbox (screen pop, from the INVITE's X-Hub-Conversation header) and
 * 挂断 ends the agent's part; 保持 and 恢复 go through the hub (POST /api/calls/{id}/control), so the caller
 * hears the hotline's music and the call record keeps them. 静音 stops the microphone in the browser (the caller
 * hears silence, the recording too); 拨号盘 sends keys in the media stream (RFC 4733), as a desk phone does, for
 * a switchboard or a bank's menu on the other end. 转接 opens the transfer panel: to a colleague or a number
 * outside, asked first (征询, the caller on hold; then 完成转接, 三方通话 or 取消征询) or at once (直接转接); to a
 * team's queue, where the caller waits for the next agent.
 */
import { Web } from '/app/static/vendor/sip.js/index.js';

const STATUS = {
  off: '软电话未连接', connecting: '软电话连接中…', ready: '软电话就绪', ringing: '来电振铃', talking: '通话中',
  held: '通话保持中',
};

const { el } = ChatKit; // classic scripts of the page, loaded before this module
const http = StaffKit.client({ loginUrl: '/app/login?next=/app/inbox' });

// The softphone's controls, built here so that every page with a softphone (the inbox, the wallboard) has the same.
const CONTROLS = [
  ['span', 'softphone-status', 'softphone-status', ''], ['span', 'softphone-peer', 'softphone-peer', ''],
  ['button', 'btn btn-primary', 'softphone-answer', '接听'], ['button', 'btn btn-outline', 'softphone-hold', '保持'],
  ['button', 'btn btn-outline', 'softphone-resume', '恢复'], ['button', 'btn btn-outline', 'softphone-mute', '静音'],
  ['button', 'btn btn-outline', 'softphone-unmute', '取消静音'], ['button', 'btn btn-outline', 'softphone-keypad', '拨号盘'],
  ['button', 'btn btn-outline', 'softphone-transfer', '转接'], ['button', 'btn btn-danger', 'softphone-hangup', '挂断'],
];
const DTMF_MS = 120; // how long a key sounds, and the silence after it
const DTMF_GAP_MS = 80;
const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];

// The transfer panel: what kind of target, which one, and the steps of a consultation.
function buildTransferPanel(root) {
  const panel = el('div', { class: 'softphone-transfer', 'data-testid': 'call-transfer-panel', role: 'group',
    'aria-label': '转接' });
  panel.hidden = true;
  const kind = el('select', { 'data-testid': 'call-transfer-kind', 'aria-label': '转接对象' });
  for (const [value, label] of [['agent', '坐席'], ['outside', '外线号码'], ['team', '技能组排队']]) {
    kind.append(new Option(label, value));
  }
  const agent = el('select', { 'data-testid': 'call-transfer-agent', 'aria-label': '坐席' });
  const team = el('select', { 'data-testid': 'call-transfer-team', 'aria-label': '技能组' });
  const number = el('input', { 'data-testid': 'call-transfer-number', 'aria-label': '外线号码', type: 'tel',
    inputmode: 'tel', maxlength: '32', placeholder: '手机或带区号固话' });
  panel.append(kind, agent, team, number);
  for (const [testid, text] of [['call-transfer-consult', '征询'], ['call-transfer-blind', '直接转接'],
    ['call-transfer-complete', '完成转接'], ['call-transfer-conference', '三方通话'], ['call-transfer-cancel', '取消征询']]) {
    panel.append(el('button', { type: 'button', class: 'btn btn-outline', 'data-testid': testid, text }));
  }
  panel.append(el('span', { class: 'field-error', 'data-testid': 'call-transfer-error', role: 'alert' }));
  root.append(panel);
  return panel;
}

function buildKeypad(root) {
  const pad = document.createElement('div');
  pad.className = 'softphone-pad';
  pad.dataset.testid = 'softphone-pad';
  pad.setAttribute('role', 'group');
  pad.setAttribute('aria-label', '拨号盘');
  pad.hidden = true;
  for (const key of KEYS) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'btn btn-outline';
    button.dataset.testid = 'softphone-key';
    button.dataset.key = key;
    button.textContent = key;
    pad.append(button);
  }
  const sent = document.createElement('span');
  sent.className = 'softphone-sent';
  sent.dataset.testid = 'softphone-sent';
  pad.append(sent);
  root.append(pad);
  return pad;
}

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
  buildKeypad(root);
  buildTransferPanel(root);
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
      mute: root.querySelector('[data-testid=softphone-mute]'),
      unmute: root.querySelector('[data-testid=softphone-unmute]'),
      keypad: root.querySelector('[data-testid=softphone-keypad]'),
    };
    this.pad = root.querySelector('[data-testid=softphone-pad]');
    this.transfer = new TransferPanel(root.querySelector('[data-testid=call-transfer-panel]'), this);
    this.buttons.transfer = root.querySelector('[data-testid=softphone-transfer]');
    this.sent = root.querySelector('[data-testid=softphone-sent]');
    this.audio = root.querySelector('[data-testid=softphone-audio]');
    this.session = null;
    this.callId = null;
    this.registered = false;
    this.buttons.answer.addEventListener('click', () => this.answer());
    this.buttons.hangup.addEventListener('click', () => this.hangup());
    this.buttons.hold.addEventListener('click', () => this.control('hold'));
    this.buttons.resume.addEventListener('click', () => this.control('resume'));
    this.buttons.mute.addEventListener('click', () => this.mute(true));
    this.buttons.unmute.addEventListener('click', () => this.mute(false));
    this.buttons.keypad.addEventListener('click', () => { this.pad.hidden = !this.pad.hidden; });
    this.buttons.transfer.addEventListener('click', () => this.transfer.toggle());
    this.pad.addEventListener('click', (event) => {
      const key = event.target.closest('[data-key]');
      if (key) this.press(key.dataset.key);
    });
  }

  async start() {
    let settings;
    try {
      settings = await http.api('GET', '/api/softphone');
    } catch {
      return; // no softphone on this account: a desk phone, or none
    }
    this.userId = settings.user_id;
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

  mute(on) {
    if (!this.session) return;
    if (on) this.manager.mute(this.session); else this.manager.unmute(this.session);
    this.root.dataset.muted = String(on);
    this.show(this.root.dataset.state);
  }

  // Keys go in the media stream (RFC 4733, the browser's RTCDTMFSender), as Asterisk's endpoints expect. A key
  // pressed while the one before still sounds joins the sender's tone buffer instead of replacing it.
  press(key) {
    const connection = this.session && this.session.sessionDescriptionHandler
      && this.session.sessionDescriptionHandler.peerConnection;
    const sender = connection && connection.getSenders().find((s) => s.track && s.track.kind === 'audio');
    if (!sender || !sender.dtmf || !sender.dtmf.canInsertDTMF) {
      this.peer.textContent = '按键未发送：通话尚未接通';
      return;
    }
    sender.dtmf.insertDTMF(sender.dtmf.toneBuffer + key, DTMF_MS, DTMF_GAP_MS);
    this.sent.textContent += key;
  }

  async control(action) {
    try {
      await this.command({ action });
    } catch (err) {
      this.peer.textContent = err.message;
    }
  }

  // One call control through the hub; the call's state after it (the error is the caller's to show). The hub
  // may hang up this phone's leg (a transfer, a queue): its BYE can arrive before the answer, and then the
  // phone is ready again, not talking.
  async command(body) {
    if (!this.callId) throw new Error('没有进行中的通话');
    const state = await http.api('POST', `/api/calls/${this.callId}/control`, body);
    if (this.session) this.show(state.held ? 'held' : 'talking');
    return state;
  }

  ended() {
    this.session = null;
    this.callId = null;
    this.peer.textContent = '';
    this.sent.textContent = '';
    this.pad.hidden = true;
    this.transfer.close();
    this.root.dataset.muted = 'false';
    this.show(this.registered ? 'ready' : 'off');
  }

  show(state) {
    const muted = this.root.dataset.muted === 'true';
    const live = ['talking', 'held'].includes(state);
    this.root.dataset.state = state;
    this.status.textContent = muted && live ? `${STATUS[state]}（已静音）` : STATUS[state];
    this.buttons.answer.hidden = state !== 'ringing';
    this.buttons.answer.disabled = false;
    this.buttons.hangup.hidden = !['ringing', 'talking', 'held'].includes(state);
    this.buttons.hold.hidden = state !== 'talking';
    this.buttons.resume.hidden = state !== 'held';
    this.buttons.mute.hidden = !live || muted;
    this.buttons.unmute.hidden = !live || !muted;
    this.buttons.keypad.hidden = !live;
    this.buttons.transfer.hidden = !live;
    if (!live) this.pad.hidden = true;
  }
}

class TransferPanel {
  constructor(panel, phone) {
    this.panel = panel;
    this.phone = phone;
    this.field = (name) => panel.querySelector(`[data-testid=call-transfer-${name}]`);
    this.consulting = false;
    this.field('kind').addEventListener('change', () => this.render());
    this.field('consult').addEventListener('click', () => this.run(() => this.consult()));
    this.field('blind').addEventListener('click', () => this.run(() => this.blind()));
    this.field('complete').addEventListener('click', () => this.run(() => this.finish('transfer')));
    this.field('conference').addEventListener('click', () => this.run(() => this.finish('conference')));
    this.field('cancel').addEventListener('click', () => this.run(() => this.finish('cancel')));
  }

  async toggle() {
    if (!this.panel.hidden) {
      this.panel.hidden = true;
      return;
    }
    this.panel.hidden = false;
    this.render();
    try {
      const targets = await http.api('GET', '/api/transfer-targets');
      this.field('agent').replaceChildren(new Option('请选择坐席', ''), ...targets.agents
        .filter((a) => a.id !== this.phone.userId).map((a) => new Option(a.display_name, a.id)));
      this.field('team').replaceChildren(new Option('请选择技能组', ''), ...targets.teams
        .map((t) => new Option(`${t.name}（排队 ${t.waiting}）`, t.id)));
    } catch (err) {
      this.error(err.message);
    }
  }

  close() {
    this.panel.hidden = true;
    this.consulting = false;
    this.error('');
  }

  render() {
    const kind = this.field('kind').value;
    this.field('agent').hidden = kind !== 'agent' || this.consulting;
    this.field('team').hidden = kind !== 'team' || this.consulting;
    this.field('number').hidden = kind !== 'outside' || this.consulting;
    this.field('kind').disabled = this.consulting;
    this.field('consult').hidden = kind === 'team' || this.consulting;
    this.field('blind').hidden = this.consulting;
    for (const step of ['complete', 'conference', 'cancel']) this.field(step).hidden = !this.consulting;
  }

  error(text) {
    this.field('error').textContent = text;
  }

  // The chosen target as the control API takes it, or an error shown and null.
  target() {
    const kind = this.field('kind').value;
    const value = kind === 'outside' ? this.field('number').value.trim() : this.field(kind).value;
    if (!value) {
      this.error({ agent: '请选择坐席', team: '请选择技能组', outside: '请填写外线号码' }[kind]);
      return null;
    }
    return kind === 'agent' ? { agent_id: Number(value) } : kind === 'team' ? { team_id: Number(value) }
      : { phone: value };
  }

  // One step at a time: buttons are disabled until the hub answers (a double click acts once).
  async run(step) {
    const buttons = [...this.panel.querySelectorAll('button')];
    buttons.forEach((button) => { button.disabled = true; });
    this.error('');
    try {
      await step();
    } catch (err) {
      this.error(err.message);
    } finally {
      buttons.forEach((button) => { button.disabled = false; });
      this.render();
    }
  }

  async consult() {
    const target = this.target();
    if (!target) return;
    await this.phone.command({ action: 'consult', ...target });
    this.consulting = true;
  }

  async blind() {
    const target = this.target();
    if (!target) return;
    if (target.team_id) {
      await this.phone.command({ action: 'queue', ...target });
    } else {
      await this.phone.command({ action: 'consult', ...target });
      this.consulting = true;
      await this.phone.command({ action: 'transfer' });
    }
    this.close();
  }

  async finish(action) {
    await this.phone.command({ action });
    this.consulting = false;
    if (action !== 'cancel') this.close();
  }
}

const root = document.querySelector('[data-testid=softphone]');
if (root) {
  window.softphone = new Softphone(root);
  window.softphone.start();
}
