/**
 * API key entry: a dialog that stores the key in the client (and so in localStorage), opened from
 * the top bar, when GET /v1/session says a key is needed and none is set, or when a request is
 * refused with 401. It checks a new key against /v1/session before keeping it.
 */
import { ApiRequestError, describeError, type ApiClient } from './api-client.js';
import { h, replaceChildren } from './dom.js';
import type { SessionReply } from './types.js';

/** The key dialog and the top bar's key button. */
export class KeyEntry {
  private readonly input: HTMLInputElement;
  private readonly reason: HTMLElement;
  private readonly error: HTMLElement;
  /** Called after the key was saved or cleared. */
  onKeyChanged: () => void = () => {};

  constructor(
    private readonly api: ApiClient,
    private readonly dialog: HTMLDialogElement,
    private readonly button: HTMLButtonElement,
  ) {
    this.input = h('input', { type: 'password', id: 'api-key', autocomplete: 'off', spellcheck: 'false', 'data-testid': 'key-input' });
    this.reason = h('p', { class: 'muted', 'data-testid': 'key-reason' });
    this.error = h('p', { class: 'message error', role: 'alert', hidden: true, 'data-testid': 'key-error' });
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', { id: 'key-dialog-title' }, 'API key'),
      this.reason,
      h('label', { for: 'api-key' }, 'Key'),
      this.input,
      this.error,
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'submit', 'data-testid': 'key-save' }, 'Save'),
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'key-clear', onclick: () => void this.save(null) }, 'Forget key'),
        h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel'),
      ),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.save(this.input.value);
    });
    replaceChildren(dialog, form);
    button.addEventListener('click', () => this.open('Keys are issued by whoever runs this Tessera server. The key stays in this browser.'));
    this.renderButton();
  }

  /** Asks for a key, saying why. */
  open(reason: string): void {
    this.reason.textContent = reason;
    if (this.dialog.open) return;
    this.error.hidden = true;
    this.input.value = '';
    this.dialog.showModal();
    this.input.focus();
  }

  /** Reads the session; asks for a key when the server requires one and none works. */
  async check(): Promise<SessionReply | null> {
    try {
      const session = await this.api.session();
      if (session.authRequired && !session.key) this.open(this.api.hasKey ? 'The saved API key was refused: enter another.' : 'This server requires an API key.');
      this.renderButton(session);
      return session;
    } catch (error) {
      if (!(error instanceof ApiRequestError && error.unauthorized)) this.renderButton();
      return null;
    }
  }

  /** Keeps a key the server knows (or, with null, forgets the key). */
  private async save(key: string | null): Promise<void> {
    const previous = this.api.authHeaders().Authorization?.replace(/^Bearer /, '') ?? null;
    this.api.setKey(key);
    let session: SessionReply | undefined;
    if (key) {
      let refusal: string | null = null;
      try {
        session = await this.api.session();
        if (session.authRequired && !session.key) refusal = 'the server does not know this key.';
      } catch (error) {
        refusal = describeError(error);
      }
      if (refusal) {
        this.api.setKey(previous);
        this.error.textContent = `Not saved: ${refusal}`;
        this.error.hidden = false;
        return;
      }
    }
    this.dialog.close();
    this.renderButton(session);
    this.onKeyChanged();
  }

  private renderButton(session?: SessionReply): void {
    this.button.textContent = this.api.hasKey ? `API key ✓${session?.key ? ` (${session.key.id})` : ''}` : 'API key';
    this.button.setAttribute('aria-label', this.api.hasKey ? 'API key set: change or forget it' : 'Enter an API key');
  }
}
