/**
 * What `berth plugins` and `berth explain` print: the plugin table (docker-style columns,
 * long cells cut unless --no-trunc) and a container's start as a tree — hook by hook in the
 * order they ran, each tap with its stage, duration, whether its selector skipped it, and the
 * spec paths it set — followed by the undo steps a failed start ran and the spec conflicts.
 */
import type { ContainerExplain, PluginInfo, TapRecord } from '@berth/core';

const CELL_MAX = 40;

function cut(s: string, trunc: boolean): string {
  return trunc && s.length > CELL_MAX ? `${s.slice(0, CELL_MAX - 1)}…` : s;
}

/** Columns padded to their widest cell, three spaces apart (as docker's tables). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function configText(config: unknown): string {
  if (config === undefined) return '-';
  if (typeof config === 'object' && config !== null && Object.keys(config).length === 0) return '-';
  return JSON.stringify(config);
}

/** The plugin table: name, type, version, status (a skipped one with its reason), the hooks it taps, its config. */
export function pluginTable(plugins: readonly PluginInfo[], opts: { trunc?: boolean } = {}): string {
  const trunc = opts.trunc ?? true;
  const rows = plugins.map((p) => [
    p.name,
    p.type,
    p.version ?? '-',
    cut(p.reason ? `${p.status}: ${p.reason}` : p.status, trunc),
    cut([...new Set(p.hooks.map((h) => h.hook))].join(',') || '-', trunc),
    cut(configText(p.config), trunc),
  ]);
  return table(['NAME', 'TYPE', 'VERSION', 'STATUS', 'HOOKS', 'CONFIG'], rows);
}

function ms(n: number): string {
  return n >= 100 ? `${n.toFixed(0)} ms` : n >= 10 ? `${n.toFixed(1)} ms` : `${n.toFixed(2)} ms`;
}

function tapLine(t: TapRecord): string {
  const who = t.tap === t.plugin ? t.plugin : `${t.plugin} (${t.tap})`;
  const parts = [who, `stage ${t.stage}`];
  if (t.skipped) parts.push('skipped: its selector excludes this container');
  else parts.push(ms(t.durationMs));
  if (t.error !== undefined) parts.push(`FAILED: ${t.error}`);
  return parts.join('  ');
}

/** Consecutive taps of one hook, in the order they ran. */
function groups(taps: readonly TapRecord[]): Array<{ hook: string; taps: TapRecord[] }> {
  const out: Array<{ hook: string; taps: TapRecord[] }> = [];
  for (const t of taps) {
    const last = out.at(-1);
    if (last && last.hook === t.hook) last.taps.push(t);
    else out.push({ hook: t.hook, taps: [t] });
  }
  return out;
}

const SOURCE_TEXT: Record<ContainerExplain['source'], string> = {
  memory: 'recorded by this daemon',
  file: 'recorded before the daemon restarted',
  none: 'never started',
};

/** A container's start as a tree. */
export function explainTree(e: ContainerExplain): string {
  const lines: string[] = [];
  lines.push(`container ${e.name} (${e.containerId.slice(0, 12)})`);
  lines.push(e.startedAt ? `last start ${e.startedAt} (${SOURCE_TEXT[e.source]})` : SOURCE_TEXT.none);
  const gs = groups(e.taps);
  gs.forEach((g, gi) => {
    const lastGroup = gi === gs.length - 1;
    lines.push(`${lastGroup ? '└─' : '├─'} ${g.hook}`);
    const indent = lastGroup ? '   ' : '│  ';
    g.taps.forEach((t, ti) => {
      const lastTap = ti === g.taps.length - 1;
      lines.push(`${indent}${lastTap ? '└─' : '├─'} ${tapLine(t)}`);
      if (t.changedPaths?.length) {
        const more = t.changedPaths.length + (t.changedPathsOmitted ?? 0);
        const omitted = t.changedPathsOmitted ? ` (+${t.changedPathsOmitted} more)` : '';
        lines.push(`${indent}${lastTap ? '   ' : '│  '}   sets ${more === 1 ? 'spec path' : 'spec paths'}: ${t.changedPaths.join(', ')}${omitted}`);
      }
    });
  });
  if (e.undos.length > 0) {
    lines.push('undo steps run (the start failed):');
    for (const u of e.undos) {
      lines.push(`  ${u.plugin} (${u.hook}${u.label ? `: ${u.label}` : ''})  ${ms(u.durationMs)}${u.error !== undefined ? `  FAILED: ${u.error}` : ''}`);
    }
  }
  if (e.conflicts.length > 0) {
    lines.push('spec paths set by more than one plugin (the last one wins):');
    for (const c of e.conflicts) lines.push(`  ${c.path}: ${c.plugins.join(' → ')}`);
  }
  return lines.join('\n') + '\n';
}
