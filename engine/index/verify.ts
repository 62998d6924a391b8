/**
 * verifyShard: every invariant of a shard, checked against what is on disk, in both directions.
 * Records ↔ vectors ↔ segments ↔ tombstones, slides ↔ tiles, the segment files (size, sha256,
 * members), each sub-graph against its segment (size, sha256, exactly the segment's tiles of its
 * value), the manifest against the commit point, and files no commit lists.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TileCatalogue } from './catalogue.js';
import { loadSegment, segmentFiles, segmentPath, SEGMENTS_FOLDER, sha256OfFile, type Graph } from './segment-file.js';
import type { ShardCounters, ShardStore } from './shard-store.js';
import type { Label, SegmentRef, ShardManifest, SubgraphRef } from './types.js';

export interface VerifyContext {
  index: number;
  dir: string;
  dimension: number;
  store: ShardStore;
  counters: ShardCounters;
  tombstones: ReadonlySet<Label>;
  catalogue: TileCatalogue;
}

/** Vectors per segment compared with the commit point's copy (the file's checksum covers the rest). */
const SAMPLED_VECTORS = 32;

/** Returns the problems found (empty when the shard is sound). Loads each segment in turn. */
export function verifyShard(context: VerifyContext): string[] {
  const { index, dir, store, counters, tombstones, catalogue } = context;
  const where = `shard ${index}`;
  const problems: string[] = [];
  const tileLabels = new Set<Label>();
  for (const { label, tile } of store.tileRecords()) {
    tileLabels.add(label);
    if (!catalogue.slide(tile.slideId)) problems.push(`${where}: tile ${label} belongs to slide ${tile.slideId}, which has no record`);
  }
  const vectorLabels = new Set<Label>(store.vectorLabels());
  const withoutVector = [...tileLabels].filter((label) => !vectorLabels.has(label));
  if (withoutVector.length > 0) problems.push(`${where}: ${withoutVector.length} tile records have no vector (first: ${withoutVector[0]})`);
  const withoutRecord = [...vectorLabels].filter((label) => !tileLabels.has(label));
  if (withoutRecord.length > 0) problems.push(`${where}: ${withoutRecord.length} vectors have no tile record (first: ${withoutRecord[0]})`);
  if ([...tileLabels].some((label) => label >= counters.nextLabel)) problems.push(`${where}: tile labels at or past nextLabel ${counters.nextLabel}`);

  let listed = 0;
  for (const slide of catalogue.slides()) {
    listed += slide.labels.length;
    const foreign = slide.labels.find((label) => store.tile(label)?.slideId !== slide.slideId);
    if (foreign !== undefined) problems.push(`${where}: slide ${slide.slideId} lists tile ${foreign}, which has no record of that slide`);
  }
  if (listed !== tileLabels.size) problems.push(`${where}: slides list ${listed} tiles, LMDB holds ${tileLabels.size} tile records`);

  // Segments: ordered, disjoint, within the labels handed out; each file as committed.
  const covered = new Set<Label>();
  let previousEnd = 0;
  for (const ref of counters.segments) {
    const name = `${where}: segment ${ref.file}`;
    if (ref.firstLabel < previousEnd || ref.endLabel <= ref.firstLabel || ref.endLabel > counters.nextLabel) problems.push(`${name} covers labels [${ref.firstLabel}, ${ref.endLabel}), overlapping another or past ${counters.nextLabel}`);
    previousEnd = ref.endLabel;
    const graph = checkedGraph(context, ref, name, problems);
    if (!graph) continue;
    const members = graph.getIdsList();
    if (members.length !== ref.vectors) problems.push(`${name} holds ${members.length} vectors, the commit point says ${ref.vectors}`);
    let outside = 0;
    let unaccounted = 0;
    for (const label of members) {
      covered.add(label);
      if (label < ref.firstLabel || label >= ref.endLabel) outside++;
      else if (!tileLabels.has(label) && !tombstones.has(label)) unaccounted++;
    }
    if (outside > 0) problems.push(`${name} holds ${outside} vectors outside its label range`);
    if (unaccounted > 0) problems.push(`${name} holds ${unaccounted} vectors that are neither live tiles nor tombstones (deleted tiles would come back)`);
    problems.push(...verifySubgraphs(context, ref, members, tileLabels));
    const sampled = members.filter((label) => tileLabels.has(label)).slice(0, SAMPLED_VECTORS);
    for (const label of sampled) {
      const stored = store.vector(label) as Float32Array;
      const inGraph = graph.getPoint(label);
      let dot = 0;
      for (let d = 0; d < stored.length; d++) dot += (stored[d] as number) * (inGraph[d] as number);
      if (dot < 0.999) {
        problems.push(`${name}: the vector of tile ${label} differs from the commit point's`);
        break;
      }
    }
  }
  const segmentedEnd = counters.segmentedEnd;
  const unsearchable = [...tileLabels].filter((label) => label < segmentedEnd && !covered.has(label));
  if (unsearchable.length > 0) problems.push(`${where}: ${unsearchable.length} live tiles lie in segmented labels but no segment holds them (invisible to searches)`);
  const strayTombstones = [...tombstones].filter((label) => !covered.has(label) || tileLabels.has(label));
  if (strayTombstones.length > 0) problems.push(`${where}: ${strayTombstones.length} tombstones name a live tile or a label no segment holds (first: ${strayTombstones[0]})`);

  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) problems.push(`${where}: manifest.json is missing`);
  else {
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as ShardManifest;
    // A manifest behind the commit point is a crash between the two (see manifestLag), not damage.
    if (manifest.commit > counters.commit) problems.push(`${where}: manifest.json is at commit ${manifest.commit}, past the commit point's ${counters.commit}`);
    else if (manifest.commit === counters.commit) {
      if (manifest.counts?.tiles !== tileLabels.size) problems.push(`${where}: manifest counts ${manifest.counts?.tiles} tiles, LMDB holds ${tileLabels.size}`);
      if (manifest.counts?.slides !== catalogue.slideCount) problems.push(`${where}: manifest counts ${manifest.counts?.slides} slides, LMDB holds ${catalogue.slideCount}`);
    }
  }
  return problems;
}

/**
 * A segment's sub-graphs: each file as committed, and holding exactly the segment's members whose
 * field has the sub-graph's value (the live ones are checked against their records; tombstoned
 * ones have none left, so only their presence in the segment is).
 */
function verifySubgraphs(context: VerifyContext, ref: SegmentRef, segmentMembers: Label[], tileLabels: ReadonlySet<Label>): string[] {
  const problems: string[] = [];
  const inSegment = new Set(segmentMembers);
  for (const subgraphRef of ref.subgraphs ?? []) {
    const name = `shard ${context.index}: sub-graph ${subgraphRef.file} (${subgraphRef.field} of segment ${ref.file})`;
    const graph = checkedGraph(context, subgraphRef, name, problems);
    if (!graph) continue;
    const members = graph.getIdsList();
    if (members.length !== subgraphRef.vectors) problems.push(`${name} holds ${members.length} vectors, the commit point says ${subgraphRef.vectors}`);
    const inSubgraph = new Set(members);
    const foreign = members.filter((label) => !inSegment.has(label) || (tileLabels.has(label) && facetValue(context, label, subgraphRef.field) !== subgraphRef.value));
    if (foreign.length > 0) problems.push(`${name} holds ${foreign.length} vectors of tiles outside the segment or without its value (first: ${foreign[0]})`);
    const missing = segmentMembers.filter((label) => tileLabels.has(label) && !inSubgraph.has(label) && facetValue(context, label, subgraphRef.field) === subgraphRef.value);
    if (missing.length > 0) problems.push(`${name} lacks ${missing.length} of the segment's tiles with its value (filtered searches would miss them; first: ${missing[0]})`);
  }
  return problems;
}

/** Loads a listed file after checking its size and checksum; null (with the problem noted) when it fails. */
function checkedGraph(context: VerifyContext, ref: SegmentRef | SubgraphRef, name: string, problems: string[]): Graph | null {
  const path = segmentPath(context.dir, ref.file);
  if (!existsSync(path)) {
    problems.push(`${name} is listed but missing`);
    return null;
  }
  if (statSync(path).size !== ref.bytes) problems.push(`${name} is ${statSync(path).size} bytes, the commit point says ${ref.bytes}`);
  const checksum = sha256OfFile(path);
  if (checksum !== ref.sha256) {
    problems.push(`${name} checksum ${checksum.slice(0, 12)}… differs from the commit point's ${ref.sha256.slice(0, 12)}…`);
    return null;
  }
  try {
    return loadSegment(context.dir, context.index, ref, context.dimension);
  } catch (error) {
    problems.push((error as Error).message);
    return null;
  }
}

/** A live tile's value of a field, looked up as filters do: its own metadata, then its slide's. */
function facetValue(context: VerifyContext, label: Label, field: string): string | undefined {
  return context.catalogue.tileMetadata(label)?.[field] ?? context.catalogue.slideOf(label)?.metadata[field];
}

/** Files in segments/ that no commit lists: left by an interrupted build, removed by the next writer. */
export function orphanFiles(dir: string, counters: Pick<ShardCounters, 'segments'>): string[] {
  const folder = join(dir, SEGMENTS_FOLDER);
  if (!existsSync(folder)) return [];
  const listed = new Set(counters.segments.flatMap(segmentFiles));
  // A temporary file is never listed: it is an orphan like any other unlisted name.
  return readdirSync(folder).filter((name) => !listed.has(name));
}

/** Commits the manifest is behind the commit point (a crash after the LMDB transaction); the next writer rewrites it. */
export function manifestLag(dir: string, counters: Pick<ShardCounters, 'commit'>): number {
  const path = join(dir, 'manifest.json');
  if (!existsSync(path)) return 0;
  return Math.max(0, counters.commit - (JSON.parse(readFileSync(path, 'utf8')) as ShardManifest).commit);
}
