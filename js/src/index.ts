import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';
import { watchReplies } from './replycode';
import { SessionsSidebar } from './sidebar';

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">
  <path class="jp-icon3" fill="#616161" d="M4 4h16a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 5v2h10V9H7zm0 3v2h7v-2H7z"/>
</svg>`;

export const sessionsIcon = new LabIcon({ name: 'nbsessions:sessions', svgstr: ICON });

/** The "Agent sessions" tab in the left area. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbsessions:sidebar',
  description: "A notebook's agent sessions, searchable, with a jump back to the cell that made each run.",
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null) => {
    const sidebar = new SessionsSidebar(tracker, rendermime, app.shell);
    sidebar.title.icon = sessionsIcon;
    app.shell.add(sidebar, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(sidebar, 'nbsessions-sidebar');
    }
  }
};

/** Copy and Insert below on every code block of a reply, in cell outputs and in the ``%agent panel`` widget. */
const replyCode: JupyterFrontEndPlugin<void> = {
  id: 'nbsessions:reply-code',
  description: 'A Copy button on each code block of an nbsessions reply, in cells and in the panel.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    watchReplies(tracker);
  }
};

export default [plugin, replyCode];
