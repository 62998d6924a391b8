/**
 * BIGPICTURE MetaFleX 2.0.0 metadata: a small dataset describing three shared DICOM slides
 * (test/indexer/metaflex) that xmllint validates against BIGPICTURE's own schemas, mapped onto
 * Tessera's slide fields.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSlide } from '../../engine/index.js';
import { discoverSlides } from '../../indexer/discover.js';
import { PROJECT_ROOT, SHARED_MISSING, SHARED_ROOT, SLIDES, hasSharedData } from '../shared-data.js';

const DATASET = join(PROJECT_ROOT, 'test', 'indexer', 'metaflex');
const XSD = join(SHARED_ROOT, 'data', 'bigpicture', 'xsd');
const hasXmllint = existsSync('/usr/bin/xmllint');
const FILES: Array<[file: string, schema: string]> = [
  ['sample.xml', 'BP.sample.xsd'],
  ['image.xml', 'BP.image.xsd'],
  ['staining.xml', 'BP.staining.xsd'],
  ['observation.xml', 'BP.observation.xsd'],
  ['dataset.xml', 'BP.dataset.xsd'],
];

describe.skipIf(!hasSharedData || !hasXmllint || !existsSync(XSD))(`MetaFleX dataset ${!hasSharedData ? SHARED_MISSING : !hasXmllint ? 'xmllint not installed (apt-get install libxml2-utils)' : ''}`, () => {
  for (const [file, schema] of FILES) {
    it(`${file} is valid against BIGPICTURE's ${schema} (xmllint --schema)`, () => {
      const out = execFileSync('/usr/bin/xmllint', ['--noout', '--schema', join(XSD, schema), join(DATASET, file)], { stdio: ['ignore', 'pipe', 'pipe'] });
      expect(out.toString()).toBe('');
    });
  }

  it('maps image → slide → block → specimen → biological being, stains and diagnoses onto slide fields', () => {
    const items = discoverSlides(SLIDES, DATASET);
    expect(items.map((item) => item.slideId)).toEqual(['IM-TCGA-1-A-1', 'IM-TCGA-1-A-2', 'IM-MOUSE-7-A-1']);
    const [first, second, mouse] = items;
    expect(first?.path).toBe(join(SLIDES, 'tcga-small-dicom.dcm'));
    expect(first?.metadata).toMatchObject({
      patient_id: 'BB-TCGA-1',
      species: 'Homo sapiens',
      organ: 'Colon',
      stain: 'H&E',
      // Stated on the specimen: inherited by every image of it.
      diagnosis: 'Adenocarcinoma, NOS',
      dataset: 'tessera-shared',
      'bp.image': 'IM-TCGA-1-A-1',
      'bp.slide': 'SL-TCGA-1-A-1',
      'bp.block': 'BL-TCGA-1-A',
      'bp.specimen': 'SP-TCGA-1-colon',
      'bp.case': 'CASE-TCGA-1',
      'bp.biological_being': 'BB-TCGA-1',
      'bp.staining': 'ST-HE',
      'bp.diagnosis.code': 'ICD-O-3:8140/3',
      'bp.diagnosis.freetext': 'Moderately differentiated adenocarcinoma of the colon.',
      'bp.image.scanner': 'converted from an Aperio scan',
      'bp.slide.section_thickness_um': '4',
      'bp.block.embedding_medium': 'Paraffin wax',
      'bp.specimen.extraction_method': 'Resection',
      'bp.biological_being.sex': 'Female',
    });
    // A diagnosis stated on the image itself wins over the specimen's.
    expect(second?.metadata).toMatchObject({ patient_id: 'BB-TCGA-1', diagnosis: 'No tumour in this section.', 'bp.diagnosis.observation': 'OB-TCGA-1-A-2-finding' });
    expect(second?.metadata['bp.diagnosis.code']).toBeUndefined();
    expect(mouse?.metadata).toMatchObject({ patient_id: 'BB-MOUSE-7', species: 'Mus musculus', organ: 'Liver', stain: 'PAS', diagnosis: 'Normal', dataset: 'tessera-shared' });
  });

  it('names slides that open: every image file is a readable DICOM slide', async () => {
    for (const item of discoverSlides(SLIDES, join(DATASET, 'image.xml'))) {
      const slide = await openSlide(item.path);
      expect(slide.format).toBe('dicom');
      slide.close();
    }
  });

  it('refuses a dataset that refers to an object it does not define, or another standard version', () => {
    const broken = mkdtempSync(join(tmpdir(), 'tessera-metaflex-'));
    cpSync(DATASET, broken, { recursive: true });
    writeFileSync(join(broken, 'image.xml'), readFileSync(join(DATASET, 'image.xml'), 'utf8').replace('<IMAGE_OF alias="SL-MOUSE-7-A-1"/>', '<IMAGE_OF alias="SL-NOWHERE"/>'));
    expect(() => discoverSlides(SLIDES, broken)).toThrow(/image IM-MOUSE-7-A-1 refers to slide SL-NOWHERE/);
    const future = mkdtempSync(join(tmpdir(), 'tessera-metaflex-'));
    cpSync(DATASET, future, { recursive: true });
    writeFileSync(join(future, 'dataset.xml'), readFileSync(join(DATASET, 'dataset.xml'), 'utf8').replace('<METADATA_STANDARD>2.0.0<', '<METADATA_STANDARD>3.0.0<'));
    expect(() => discoverSlides(SLIDES, future)).toThrow(/metadata standard 3\.0\.0 is not supported/);
  });
});
