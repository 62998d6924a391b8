/**
 * New cases: the slide files under the server's slide roots that are not indexed yet (GET
 * /v1/cases), listed when the user unfolds the panel, so that one can be opened and searched from
 * before it is indexed. Opening is reported to the caller; the list does not know the viewer.
 */
import { describeError, type ApiClient } from './api-client.js';
import { groupDigits, h, replaceChildren } from './dom.js';
import type { CaseList as CaseListReply, CaseSummary, SlideSummary } from './types.js';

export class CaseList {
  private loaded = false;
  /** Called with the path of the case the user opened. */
  onOpen: (path: string) => void = () => {};

  constructor(
    private readonly api: ApiClient,
    private readonly panel: HTMLDetailsElement,
    private readonly list: HTMLUListElement,
  ) {
    panel.addEventListener('toggle', () => {
      if (panel.open && !this.loaded) void this.load();
    });
  }

  private async load(): Promise<void> {
    this.loaded = true;
    replaceChildren(this.list, h('li', { class: 'message' }, 'Looking for slide files…'));
    try {
      const reply = await this.api.get<CaseListReply>('/v1/cases');
      if (reply.cases.length === 0) {
        replaceChildren(this.list, h('li', { class: 'message', 'data-testid': 'case-list-empty' }, 'Every slide file under the slide roots is indexed.'));
        return;
      }
      replaceChildren(
        this.list,
        reply.cases.map((entry) =>
          h(
            'li',
            {},
            h(
              'button',
              { type: 'button', class: 'case-card secondary', 'data-testid': 'case-card', 'data-case-path': entry.path, title: entry.bytes === undefined ? 'DICOMweb series' : `${groupDigits(entry.bytes / 1024)} KiB`, onclick: () => this.onOpen(entry.path) },
              entry.source === 'dicomweb' ? `DICOMweb series …${entry.path.slice(-16)}` : entry.path,
            ),
          ),
        ),
        reply.truncated ? h('li', { class: 'message muted' }, 'More files lie under the slide roots than are listed here.') : null,
        reply.unreachableServers > 0 ? h('li', { class: 'message warning' }, `${reply.unreachableServers} DICOMweb server${reply.unreachableServers === 1 ? '' : 's'} could not be listed now.`) : null,
      );
    } catch (error) {
      this.loaded = false;
      replaceChildren(this.list, h('li', { class: 'message error', role: 'alert', 'data-testid': 'case-list-error' }, describeError(error)));
    }
  }
}

/** A new case as the viewer shows slides: its path for an id, no tiles, no metadata. */
export function caseSlide(summary: CaseSummary): SlideSummary {
  return { slideId: summary.path, metadata: {}, width: summary.width, height: summary.height, mpp: summary.mpp, tiles: 0, shard: -1, indexedAt: '', thumbnailUrl: summary.thumbnailUrl, dziUrl: summary.dziUrl, newCase: true };
}
