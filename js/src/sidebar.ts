import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { element } from './dom';
import { sessionLine } from './format';
import { goToCell, InsertWhere, putCode } from './notebook';
import { IRunList, ISessionList, ISessionRow, requestAPI } from './request';
import { runCard } from './runs';
import { NoImagesSanitizer } from './sanitize';

const POLL_MS = 1000;
const PAGE = 50; // runs shown at first; "Show older runs" adds as many again
const SEARCH_DELAY_MS = 250;

/**
 * The "Agent sessions" sidebar: the current notebook's sessions (read by the server extension, no kernel needed),
 * a search box, and the selected session's runs. A change token is polled each second, so runs that land from
 * any kernel show up without a click.
 */
export class SessionsSidebar extends Widget {
  private readonly storeLabel = element('div', 'nbs-store');
  private readonly search = document.createElement('input');
  private readonly notice = element('div', 'nbs-notice');
  private readonly list = element('ul', 'nbs-sessions');
  private readonly detail = element('div', 'nbs-detail');
  private panel: NotebookPanel | null = null;
  private selected: string | null = null;
  private shown = PAGE;
  private readonly openFolds = new Set<string>(); // nested runs the user unfolded, by run id
  private version = '';
  private busy = false;
  private timer = 0;
  private searchTimer = 0;

  private readonly rendermime: IRenderMimeRegistry;

  constructor(
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    private readonly shell: JupyterFrontEnd.IShell
  ) {
    super();
    this.rendermime = rendermime.clone({ sanitizer: new NoImagesSanitizer(rendermime.sanitizer) });
    this.id = 'nbsessions-sidebar';
    this.addClass('nbs-sidebar');
    this.title.caption = 'Agent sessions';
    const header = element('div', 'nbs-header');
    header.appendChild(element('h2', 'nbs-title', 'Agent sessions'));
    header.appendChild(this.storeLabel);
    this.search.className = 'jp-mod-styled nbs-search';
    this.search.type = 'search';
    this.search.placeholder = 'Search names, prompts, replies';
    this.search.addEventListener('input', () => {
      window.clearTimeout(this.searchTimer);
      this.searchTimer = window.setTimeout(() => void this.refresh(true), SEARCH_DELAY_MS);
    });
    for (const part of [header, this.search, this.notice, this.list, this.detail]) {
      this.node.appendChild(part);
    }
    tracker.currentChanged.connect(() => this.follow(tracker.currentWidget), this);
    this.follow(tracker.currentWidget);
    this.timer = window.setInterval(() => void this.poll(), POLL_MS);
  }

  dispose(): void {
    window.clearInterval(this.timer);
    window.clearTimeout(this.searchTimer);
    super.dispose();
  }

  /** Read again when shown: nothing is asked of the server while the sidebar is hidden. */
  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh(true);
  }

  /** Show the sessions of another notebook (the one the user is working in). */
  private follow(panel: NotebookPanel | null): void {
    if (panel === this.panel) {
      return;
    }
    this.panel = panel;
    this.selected = null;
    this.version = '';
    this.list.replaceChildren();
    this.detail.replaceChildren();
    if (this.isVisible) {
      void this.refresh(true);
    }
  }

  private get path(): string | null {
    return this.panel ? this.panel.context.path : null;
  }

  private async poll(): Promise<void> {
    const path = this.path;
    if (!path || this.busy || !this.isVisible) {
      return;
    }
    try {
      const { version } = await requestAPI<{ version: string }>('version', { path });
      if (version !== this.version) {
        await this.refresh(false);
      }
    } catch (error) {
      this.say(String((error as Error).message ?? error));
    }
  }

  /** Reload the list (and the open session's runs); ``force`` also when nothing changed (a new search). */
  private async refresh(force: boolean): Promise<void> {
    const path = this.path;
    if (!path) {
      this.storeLabel.textContent = '';
      this.list.replaceChildren();
      this.detail.replaceChildren();
      this.say('Open a notebook to see its sessions.');
      return;
    }
    if (this.busy && !force) {
      return;
    }
    this.busy = true;
    try {
      const listing = await requestAPI<ISessionList>('sessions', { path, q: this.search.value });
      if (path !== this.path) {
        return;
      }
      this.version = listing.version;
      this.showList(listing);
      if (this.selected) {
        await this.showRuns(this.selected);
      }
    } catch (error) {
      this.say(String((error as Error).message ?? error));
    } finally {
      this.busy = false;
    }
  }

  private say(text: string): void {
    this.notice.textContent = text;
  }

  private showList(listing: ISessionList): void {
    const owner = listing.user ? ` · ${listing.user}` : '';
    this.storeLabel.textContent = `${listing.store.label}${owner}`;
    const empty = this.search.value.trim() ? 'No session matches.' : 'No sessions yet: run an %%agent cell.';
    this.say(listing.sessions.length ? '' : empty);
    this.list.replaceChildren(...listing.sessions.map(session => this.sessionItem(session)));
    if (this.selected && !listing.sessions.some(s => s.session_id === this.selected)) {
      this.selected = null;
      this.detail.replaceChildren();
    }
  }

  private sessionItem(session: ISessionRow): HTMLElement {
    const item = element('li', 'nbs-session');
    item.dataset.sessionId = session.session_id;
    item.tabIndex = 0;
    item.classList.toggle('nbs-mod-selected', session.session_id === this.selected);
    item.appendChild(element('div', 'nbs-session-name', session.name || '(unnamed session)'));
    item.appendChild(element('div', 'nbs-session-facts', sessionLine(session)));
    const open = () => {
      this.selected = session.session_id;
      this.shown = PAGE;
      this.list.querySelectorAll('.nbs-session').forEach(node => node.classList.toggle('nbs-mod-selected', node === item));
      void this.showRuns(session.session_id);
    };
    item.addEventListener('click', open);
    item.addEventListener('keydown', event => (event.key === 'Enter' ? open() : undefined));
    return item;
  }

  private async showRuns(sessionId: string): Promise<void> {
    const path = this.path;
    if (!path) {
      return;
    }
    const answer = await requestAPI<IRunList>(`sessions/${encodeURIComponent(sessionId)}/runs`, {
      path,
      last: String(this.shown)
    });
    if (sessionId !== this.selected || path !== this.path) {
      return;
    }
    const actions = {
      goToCell: (cellId: string) => {
        if (!this.panel) {
          return Promise.resolve(false);
        }
        this.shell.activateById(this.panel.id); // the notebook comes to the front if another tab hid it
        return goToCell(this.panel, cellId);
      },
      putCode: (code: string, where: InsertWhere) => this.panel && putCode(this.panel.content, code, where),
      openFolds: this.openFolds
    };
    const cards = await Promise.all(answer.runs.map(run => runCard(run, this.rendermime, actions)));
    const heading = element('h3', 'nbs-detail-title', answer.session.name || '(unnamed session)');
    this.detail.replaceChildren(heading, ...cards);
    if (answer.more) {
      const older = element('button', 'jp-Button jp-mod-styled jp-mod-reject nbs-older', 'Show older runs');
      older.addEventListener('click', () => {
        this.shown += PAGE;
        void this.showRuns(sessionId);
      });
      this.detail.appendChild(older);
    }
  }
}
