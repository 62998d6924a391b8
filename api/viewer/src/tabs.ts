/**
 * Accessible tabs (WAI-ARIA tabs pattern): one tab stop, arrow keys move between tabs, the
 * selected tab shows its panel. Used for the Results / Cohort panel.
 */

/** Tabs whose `aria-controls` name their panels. */
export class Tabs {
  constructor(private readonly tabs: HTMLButtonElement[]) {
    for (const [index, tab] of tabs.entries()) {
      tab.addEventListener('click', () => this.select(tab.id));
      tab.addEventListener('keydown', (event) => {
        const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
        if (!step) return;
        event.preventDefault();
        const next = tabs[(index + step + tabs.length) % tabs.length];
        if (next) {
          this.select(next.id);
          next.focus();
        }
      });
    }
  }

  /** Shows the tab with this id and its panel. */
  select(id: string): void {
    for (const tab of this.tabs) {
      const selected = tab.id === id;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(tab.getAttribute('aria-controls') ?? '');
      if (panel) panel.hidden = !selected;
    }
  }
}
