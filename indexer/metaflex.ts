/**
 * BIGPICTURE MetaFleX 2.0 datasets (the XML BIGPICTURE submits its slides with) read as slide
 * metadata: every IMAGE becomes a slide item, and the chain image → slide → block → specimen →
 * biological being, the slide's staining and the diagnoses observed along the chain are mapped
 * once onto Tessera's fields. Everything else is kept as `bp.*` metadata. Parsing is
 * fast-xml-parser's; this module only walks the parsed tree and must not validate the schema
 * (xmllint does that, in the tests).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { TesseraError } from '../engine/index.js';
import type { SlideItem } from './discover.js';

/** A parsed element: attributes as `@name`, text as `#text`, every child element as an array. */
interface XmlNode {
  [key: string]: XmlNode[] | string | undefined;
}

interface BpObject {
  kind: string;
  alias: string;
  node: XmlNode;
}

/** True when `path` names a MetaFleX dataset: a folder of XML files or one of its XML files. */
export function isMetaflex(path: string): boolean {
  try {
    return statSync(path).isDirectory() || extname(path).toLowerCase() === '.xml';
  } catch {
    return false;
  }
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (_name, _path, _isLeaf, isAttribute) => !isAttribute,
});

const SET_ROOTS = new Set(['SAMPLE_SET', 'IMAGE_SET', 'STAINING_SET', 'OBSERVATION_SET', 'DATASET_SET', 'ANNOTATION_SET', 'OBSERVER_SET']);
const OBJECT_KINDS = new Set(['BIOLOGICAL_BEING', 'CASE', 'SPECIMEN', 'BLOCK', 'SLIDE', 'IMAGE', 'STAINING', 'OBSERVATION', 'DATASET']);

/**
 * Slide items from a MetaFleX dataset (a folder of its XML files, or one of them: the others are
 * read from the same folder). Image files are resolved against `slidesDir` when given, else
 * against the dataset's folder.
 * @throws TesseraError INVALID_ARGUMENT for unreadable XML, another metadata standard version,
 *   or a reference to an object the dataset does not define
 */
export function slidesFromMetaflex(path: string, slidesDir: string | undefined): SlideItem[] {
  const folder = statSync(path).isDirectory() ? path : dirname(path);
  const files = readdirSync(folder).filter((file) => extname(file).toLowerCase() === '.xml').sort();
  const objects = new Map<string, BpObject>();
  for (const file of files) {
    let root: XmlNode;
    try {
      root = parser.parse(readFileSync(join(folder, file), 'utf8'), true) as XmlNode;
    } catch (error) {
      throw new TesseraError('INVALID_ARGUMENT', `${file}: not well-formed XML: ${(error as Error).message}`, { cause: error });
    }
    for (const [name, value] of Object.entries(root)) {
      if (!Array.isArray(value)) continue;
      for (const node of value) {
        if (SET_ROOTS.has(name)) {
          for (const [kind, children] of Object.entries(node)) if (OBJECT_KINDS.has(kind) && Array.isArray(children)) for (const child of children) add(objects, kind, child, file);
        } else if (OBJECT_KINDS.has(name)) {
          add(objects, name, node, file);
        }
      }
    }
  }
  const datasets = [...objects.values()].filter((object) => object.kind === 'DATASET');
  for (const dataset of datasets) {
    const standard = text(dataset.node, 'METADATA_STANDARD');
    if (standard && !/^2\.\d+\.\d+$/.test(standard)) {
      throw new TesseraError('INVALID_ARGUMENT', `MetaFleX dataset ${dataset.alias}: metadata standard ${standard} is not supported (expected 2.x.y)`);
    }
  }
  const images = [...objects.values()].filter((object) => object.kind === 'IMAGE');
  if (images.length === 0) throw new TesseraError('INVALID_ARGUMENT', `${basename(path)}: the MetaFleX dataset has no IMAGE (expected an IMAGE_SET file)`);
  const base = slidesDir ?? folder;
  const observations = [...objects.values()].filter((object) => object.kind === 'OBSERVATION');
  return images.map((image) => slideItem(image, objects, observations, datasets, base));
}

function add(objects: Map<string, BpObject>, kind: string, node: XmlNode, file: string): void {
  const alias = node['@alias'];
  if (typeof alias !== 'string' || alias === '') throw new TesseraError('INVALID_ARGUMENT', `${file}: a ${kind} has no alias`);
  objects.set(`${kind}/${alias}`, { kind, alias, node });
}

function slideItem(image: BpObject, objects: Map<string, BpObject>, observations: BpObject[], datasets: BpObject[], base: string): SlideItem {
  const file = children(image.node, 'FILES')[0];
  const filename = file ? children(file, 'FILE')[0]?.['@filename'] : undefined;
  if (typeof filename !== 'string' || filename === '') throw new TesseraError('INVALID_ARGUMENT', `MetaFleX image ${image.alias} lists no FILE`);
  const slide = follow(objects, image, 'IMAGE_OF', 'SLIDE');
  const block = slide && follow(objects, slide, 'CREATED_FROM_REF', 'BLOCK');
  const specimen = block && follow(objects, block, 'SAMPLED_FROM_REF', 'SPECIMEN');
  const being = specimen && follow(objects, specimen, 'EXTRACTED_FROM_REF', 'BIOLOGICAL_BEING');
  const caseObject = specimen && follow(objects, specimen, 'PART_OF_CASE_REF', 'CASE', false);
  const staining = slide && follow(objects, slide, 'STAINING_INFORMATION_REF', 'STAINING');
  const chain = [image, slide, block, specimen, caseObject, being].filter((object): object is BpObject => object !== undefined);

  const metadata: Record<string, string> = {};
  for (const object of chain) {
    metadata[`bp.${object.kind.toLowerCase()}`] = object.alias;
    flattenAttributes(children(object.node, 'ATTRIBUTES'), `bp.${object.kind.toLowerCase()}.`, metadata);
  }
  if (being) metadata.patient_id = being.alias;
  const species = being && attributeValue(being.node, /species/i);
  if (species) metadata.species = species;
  const organ = specimen && attributeValue(specimen.node, /anatomic|organ|site/i);
  if (organ) metadata.organ = organ;
  if (staining) {
    metadata['bp.staining'] = staining.alias;
    const stain = attributeValue(staining.node, /^short_name$/i) ?? stainCompounds(staining.node);
    if (stain) metadata.stain = stain;
  }
  // The diagnosis stated nearest the image wins: image, then slide, block, specimen, case, being.
  for (const object of chain) {
    const diagnosis = observations.find((observation) => refersTo(observation, object) && text(children(observation.node, 'STATEMENT')[0], 'STATEMENT_TYPE') === 'Diagnosis');
    if (!diagnosis) continue;
    const statement = children(diagnosis.node, 'STATEMENT')[0] as XmlNode;
    const codes = children(children(statement, 'CODE_ATTRIBUTES')[0], 'CODE_ATTRIBUTE').map((attribute) => children(attribute, 'VALUE')[0]).filter((value): value is XmlNode => value !== undefined);
    const freetext = text(statement, 'FREETEXT');
    const meaning = codes.map((code) => text(code, 'MEANING')).filter(Boolean).join('; ');
    if (meaning || freetext) metadata.diagnosis = meaning || (freetext as string);
    if (codes.length > 0) metadata['bp.diagnosis.code'] = codes.map((code) => `${text(code, 'SCHEME')}:${text(code, 'CODE')}`).join('; ');
    if (freetext) metadata['bp.diagnosis.freetext'] = freetext;
    metadata['bp.diagnosis.observation'] = diagnosis.alias;
    break;
  }
  const dataset = datasets.find((candidate) => children(candidate.node, 'IMAGE_REF').some((ref) => ref['@alias'] === image.alias));
  if (dataset) {
    metadata.dataset = text(dataset.node, 'SHORT_NAME') || dataset.alias;
    metadata['bp.dataset'] = dataset.alias;
  }
  return { slideId: image.alias, path: resolve(base, filename), metadata };
}

function follow(objects: Map<string, BpObject>, from: BpObject, element: string, kind: string, required = true): BpObject | undefined {
  const alias = children(from.node, element)[0]?.['@alias'];
  if (typeof alias !== 'string') return undefined;
  const target = objects.get(`${kind}/${alias}`);
  if (!target && required) throw new TesseraError('INVALID_ARGUMENT', `MetaFleX ${from.kind.toLowerCase()} ${from.alias} refers to ${kind.toLowerCase()} ${alias}, which the dataset does not define`);
  return target;
}

const REF_OF: Record<string, string> = {
  IMAGE: 'IMAGE_REF',
  SLIDE: 'SLIDE_REF',
  BLOCK: 'BLOCK_REF',
  SPECIMEN: 'SPECIMEN_REF',
  CASE: 'CASE_REF',
  BIOLOGICAL_BEING: 'BIOLOGICAL_BEING_REF',
};

function refersTo(observation: BpObject, object: BpObject): boolean {
  const element = REF_OF[object.kind];
  return element !== undefined && children(observation.node, element).some((ref) => ref['@alias'] === object.alias);
}

function children(node: XmlNode | undefined, name: string): XmlNode[] {
  const value = node?.[name];
  return Array.isArray(value) ? value : [];
}

/** The text of the first `name` child; undefined when absent or xsi:nil. */
function text(node: XmlNode | undefined, name: string): string | undefined {
  const child = node?.[name];
  if (!Array.isArray(child)) return undefined;
  const first = child[0] as XmlNode | string | undefined;
  if (typeof first === 'string') return first;
  const value = first?.['#text'];
  return typeof value === 'string' ? value : undefined;
}

/** One attribute's value as a string: a code's meaning, a measurement with its units. */
function valueOf(kind: string, attribute: XmlNode): string | undefined {
  const value = children(attribute, 'VALUE')[0] as XmlNode | string | undefined;
  if (kind === 'CODE_ATTRIBUTE') return typeof value === 'object' ? text(value, 'MEANING') : undefined;
  const raw = text(attribute, 'VALUE');
  if (raw === undefined) return undefined;
  return kind === 'MEASUREMENT_ATTRIBUTE' ? `${raw} ${text(attribute, 'UNITS') ?? ''}`.trim() : raw;
}

function flattenAttributes(lists: XmlNode[], prefix: string, out: Record<string, string>): void {
  for (const list of lists) {
    for (const kind of ['STRING_ATTRIBUTE', 'NUMERIC_ATTRIBUTE', 'MEASUREMENT_ATTRIBUTE', 'CODE_ATTRIBUTE', 'SET_ATTRIBUTE']) {
      for (const attribute of children(list, kind)) {
        const tag = text(attribute, 'TAG');
        if (!tag) continue;
        if (kind === 'SET_ATTRIBUTE') {
          flattenAttributes(children(attribute, 'VALUE'), `${prefix}${tag}.`, out);
          continue;
        }
        const value = valueOf(kind, attribute);
        if (value !== undefined && value !== '') out[`${prefix}${tag}`] = value;
      }
    }
  }
}

/** The value of the first attribute (any kind, in ATTRIBUTES) whose tag matches. */
function attributeValue(node: XmlNode, tag: RegExp): string | undefined {
  const found: Record<string, string> = {};
  flattenAttributes(children(node, 'ATTRIBUTES'), '', found);
  const key = Object.keys(found).find((name) => tag.test(name));
  return key === undefined ? undefined : found[key];
}

/** Stain names from a STAINING's STAIN or PROCEDURE_INFORMATION attributes, joined with " + ". */
function stainCompounds(node: XmlNode): string | undefined {
  const names: string[] = [];
  for (const element of ['STAIN', 'PROCEDURE_INFORMATION']) {
    for (const list of children(node, element)) {
      const found: Record<string, string> = {};
      flattenAttributes([list], '', found);
      for (const [tag, value] of Object.entries(found)) if (/compound|method|reporter/.test(tag)) names.push(value);
    }
  }
  return names.length > 0 ? names.join(' + ') : undefined;
}
