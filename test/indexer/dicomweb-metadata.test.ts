/**
 * `index --dicomweb URL --metadata FILE`: CSV rows and MetaFleX images matched to the series a
 * server lists, by series UID (or slide id), else study UID. The series here are the items
 * discoverDicomWeb makes (test/engine/slide/dicomweb.test.ts runs the whole thing on Orthanc).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SlideItem } from '../../indexer/discover.js';
import { withDicomWebMetadata } from '../../indexer/dicomweb-metadata.js';
import { PROJECT_ROOT, SHARED_ROOT } from '../shared-data.js';

const BASE = 'http://pacs.example/dicom-web';

function seriesItem(study: string, series: string): SlideItem {
  return { slideId: series, path: `${BASE}/studies/${study}/series/${series}`, metadata: { dicom_study_uid: study, dicom_series_uid: series, patient_id: 'dicom:0123456789abcdef' } };
}

const SERIES = [seriesItem('1.2.840.1', '1.2.840.1.1'), seriesItem('1.2.840.1', '1.2.840.1.2'), seriesItem('1.2.840.2', '1.2.840.2.1')];

function table(lines: string[]): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tessera-dicomweb-meta-')), 'slides.csv');
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

describe('metadata for DICOMweb series', () => {
  it('matches rows by series UID or slide id first, then by study UID, and keeps the server\'s UIDs', () => {
    const csv = table([
      'slide_id,dicom_series_uid,dicom_study_uid,patient_id,organ,dataset,mpp',
      '1.2.840.1.1,,,P1,skin,cmu,0.25',
      ',,1.2.840.1,P2,colon,tcga,',
      ',9.9.9,,P3,liver,other,',
    ]);
    const match = withDicomWebMetadata(SERIES, csv);
    expect(match).toMatchObject({ bySeries: 1, byStudy: 1, unmatchedSeries: 1, unmatchedRows: 1 });
    const [bySlideId, byStudy, unmatched] = match.items;
    expect(bySlideId).toMatchObject({ slideId: '1.2.840.1.1', mpp: [0.25, 0.25], metadata: { patient_id: 'P1', organ: 'skin', dataset: 'cmu', dicom_study_uid: '1.2.840.1', dicom_series_uid: '1.2.840.1.1' } });
    expect(byStudy?.metadata).toMatchObject({ patient_id: 'P2', organ: 'colon', dicom_series_uid: '1.2.840.1.2' });
    expect(unmatched).toEqual(SERIES[2]);
  });

  it('refuses a row without a key, two rows for one series, and a table that matches nothing', () => {
    expect(() => withDicomWebMetadata(SERIES, table(['slide_id,organ', ',skin']))).toThrow(/slides\.csv row 2: .*has none/);
    expect(() => withDicomWebMetadata(SERIES, table(['dicom_series_uid,organ', '1.2.840.1.1,skin', '1.2.840.1.1,colon']))).toThrow(/row 2 and slides\.csv row 3 both describe series 1\.2\.840\.1\.1/);
    expect(() => withDicomWebMetadata(SERIES, table(['dicom_study_uid,organ', '7.7,skin']))).toThrow(/none of its 1 rows matches a series the server lists/);
  });

  const xsd = join(SHARED_ROOT, 'data', 'bigpicture', 'xsd');
  it.skipIf(!existsSync(xsd))('matches MetaFleX images by a SeriesInstanceUID attribute that BIGPICTURE\'s schema accepts', () => {
    const dataset = mkdtempSync(join(tmpdir(), 'tessera-metaflex-dicomweb-'));
    cpSync(join(PROJECT_ROOT, 'test', 'indexer', 'metaflex'), dataset, { recursive: true });
    const image = join(dataset, 'image.xml');
    const keyed = readFileSync(image, 'utf8').replace(
      '<VALUE>converted from an Aperio scan</VALUE>\n      </STRING_ATTRIBUTE>',
      '<VALUE>converted from an Aperio scan</VALUE>\n      </STRING_ATTRIBUTE>\n      <STRING_ATTRIBUTE>\n        <TAG>SeriesInstanceUID</TAG>\n        <VALUE>1.2.840.2.1</VALUE>\n      </STRING_ATTRIBUTE>',
    );
    expect(keyed).toContain('<TAG>SeriesInstanceUID</TAG>');
    writeFileSync(image, keyed);
    if (existsSync('/usr/bin/xmllint')) execFileSync('/usr/bin/xmllint', ['--noout', '--schema', join(xsd, 'BP.image.xsd'), image], { stdio: ['ignore', 'pipe', 'pipe'] });
    const match = withDicomWebMetadata(SERIES, dataset);
    // The other two images carry no UID: reported, not refused (a dataset may describe files too).
    expect(match).toMatchObject({ bySeries: 1, byStudy: 0, unmatchedSeries: 2, unmatchedRows: 2 });
    expect(match.items[2]).toMatchObject({ slideId: '1.2.840.2.1', metadata: { patient_id: 'BB-TCGA-1', organ: 'Colon', stain: 'H&E', 'bp.image': 'IM-TCGA-1-A-1', dicom_series_uid: '1.2.840.2.1' } });
  });
});
