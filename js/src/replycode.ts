import { INotebookTracker } from '@jupyterlab/notebook';
import { codeButton, copyButton } from './codeblocks';
import { putCode } from './notebook';

/** Where nbsessions puts model text in a cell output or the panel: replies, a workflow's final output, and the
 * run blocks of History and ``%agent history``. The kernel sends these as inert HTML (sanitised, no scripts, no
 * handlers); the buttons are added here, by the front end. */
export const REPLY_SELECTOR = '.nbsessions-reply, .nbsessions-final, .nbsessions-run';
const READY = 'nbs-copy-ready';

/** Give each ``pre > code`` block of an nbsessions reply under ``root`` (or ``root`` itself) a toolbar with Copy
 * and Insert below; blocks that already have one, and the sidebar's (which has its own), are left alone. */
export function addReplyCodeButtons(root: Element, tracker: INotebookTracker): void {
  const blocks = root.tagName === 'PRE' ? [root] : Array.from(root.getElementsByTagName('pre'));
  for (const pre of blocks) {
    const code = pre.querySelector(':scope > code');
    if (!code || pre.classList.contains(READY) || !pre.closest(REPLY_SELECTOR) || pre.closest('.nbs-sidebar')) {
      continue;
    }
    pre.classList.add(READY);
    const bar = document.createElement('div');
    bar.className = 'nbs-code-toolbar nbs-reply-code-toolbar';
    const text = () => (code.textContent ?? '').replace(/\n$/, ''); // a fenced block ends with a newline
    bar.appendChild(copyButton(text));
    bar.appendChild(codeButton('Insert below', 'A new code cell with this code, below the cell showing it',
      'insert-below', () => insertBelow(tracker, pre, text())));
    pre.parentElement?.insertBefore(bar, pre);
  }
}

/** A new code cell under the cell whose output shows ``pre`` (under the active cell when shown elsewhere). */
function insertBelow(tracker: INotebookTracker, pre: Element, code: string): void {
  const panel = tracker.find(p => p.node.contains(pre)) ?? tracker.currentWidget;
  if (!panel) {
    return;
  }
  const index = panel.content.widgets.findIndex(cell => cell.node.contains(pre));
  if (index >= 0) {
    panel.content.activeCellIndex = index;
  }
  putCode(panel.content, code, 'below');
}

/** Watch the whole page (cell outputs, the panel's HTML widgets, outputs opened in a view of their own): the
 * panel redraws with ipywidgets, not rendermime, so a MutationObserver is the one hook that sees both. */
export function watchReplies(tracker: INotebookTracker): MutationObserver {
  const observer = new MutationObserver(records => {
    for (const record of records) {
      record.addedNodes.forEach(node => {
        if (node instanceof Element) {
          addReplyCodeButtons(node, tracker);
        }
      });
    }
  });
  observer.observe(document.body, { childList: true, subtree: true });
  addReplyCodeButtons(document.body, tracker);
  return observer;
}
