export interface RawDecoded {
  pixels: Uint8Array;
  width: number;
  height: number;
  components: number;
}
export function decodeJpeg2000Raw(bytes: Uint8Array): Promise<RawDecoded>;
export function decodeJpegLsRaw(bytes: Uint8Array): Promise<RawDecoded>;
export default function decodeTask(task: { codec: 'jpeg2000' | 'jpeg-ls'; bytes: Uint8Array }): Promise<RawDecoded>;
