/*
 * jpeg_region: decodes part of a baseline JPEG with libjpeg-turbo, natively.
 *
 * Why this exists: random region reads decode tiles only to copy a part of each. libjpeg-turbo
 * can skip the IDCT and colour conversion of rows above (jpeg_skip_scanlines) and columns beside
 * (jpeg_crop_scanline) the part wanted, and stop after its last row; no npm package exposes that.
 * sharp's per-call pipeline also costs about 1 ms per tile. This binding is the thin glue only:
 * libjpeg does the decoding. Work runs on the libuv thread pool and resolves a promise.
 *
 * decodeRegion(jpeg: Buffer, x, y, width, height, scaleDenom = 1): Promise<{ data: Buffer, width, height }>
 * (x, y, width, height in pixels of the decoded image; the part is clamped to it; output RGB).
 * scaleDenom 2, 4 or 8 decodes at 1/2, 1/4 or 1/8 size in the DCT domain (libjpeg's own
 * scaling), which costs a fraction of a full decode: what a thumbnail of a slide without a
 * pyramid needs.
 *
 * The module also holds normalizeTile (below), the embedder's per-pixel loop, for the same reason.
 */
#include <node_api.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf escape;
  char message[JMSG_LENGTH_MAX];
} error_manager;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input_ref;
  const unsigned char *input;
  size_t input_length;
  int x, y, width, height, scale_denom;
  unsigned char *output;
  int out_width, out_height;
  char error[JMSG_LENGTH_MAX + 64];
} decode_job;

static void on_error(j_common_ptr cinfo) {
  error_manager *manager = (error_manager *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, manager->message);
  longjmp(manager->escape, 1);
}

/* Corrupt data warnings (premature end, bad Huffman code) become errors: a broken tile must not
 * be served as grey. */
static void on_warning(j_common_ptr cinfo, int level) {
  if (level < 0) on_error(cinfo);
}

static void decode(napi_env env, void *data) {
  (void)env;
  decode_job *job = (decode_job *)data;
  struct jpeg_decompress_struct cinfo;
  error_manager manager;
  JSAMPLE *row = NULL;
  cinfo.err = jpeg_std_error(&manager.pub);
  manager.pub.error_exit = on_error;
  manager.pub.emit_message = on_warning;
  if (setjmp(manager.escape)) {
    snprintf(job->error, sizeof job->error, "%s", manager.message);
    free(row);
    free(job->output);
    job->output = NULL;
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, job->input, (unsigned long)job->input_length);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components != 1 && cinfo.num_components != 3) {
    snprintf(job->error, sizeof job->error, "JPEG with %d components is not supported", cinfo.num_components);
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  cinfo.out_color_space = JCS_RGB;
  if (job->scale_denom > 1) {
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)job->scale_denom;
  }
  jpeg_start_decompress(&cinfo);
  int x0 = job->x < 0 ? 0 : job->x;
  int y0 = job->y < 0 ? 0 : job->y;
  int x1 = job->x + job->width > (int)cinfo.output_width ? (int)cinfo.output_width : job->x + job->width;
  int y1 = job->y + job->height > (int)cinfo.output_height ? (int)cinfo.output_height : job->y + job->height;
  if (x1 <= x0 || y1 <= y0) {
    snprintf(job->error, sizeof job->error, "region lies outside the %ux%u JPEG", cinfo.output_width, cinfo.output_height);
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  /* Decode one iMCU (at most 16 px) beyond the part on each side: fancy upsampling of
   * subsampled chroma reads neighbouring pixels, and the part's edge pixels must come out exactly
   * as a whole-image decode gives them. */
  int margin = 8 * cinfo.max_h_samp_factor;
  int margin_y = 8 * cinfo.max_v_samp_factor;
  int dx0 = x0 - margin < 0 ? 0 : x0 - margin;
  int dx1 = x1 + margin > (int)cinfo.output_width ? (int)cinfo.output_width : x1 + margin;
  int dy0 = y0 - margin_y < 0 ? 0 : y0 - margin_y;
  JDIMENSION crop_x = (JDIMENSION)dx0;
  JDIMENSION crop_width = (JDIMENSION)(dx1 - dx0);
  /* Cropping moves crop_x left to an iMCU boundary and widens the row to match. */
  if (crop_x != 0 || crop_width != cinfo.output_width) jpeg_crop_scanline(&cinfo, &crop_x, &crop_width);
  if (dy0 > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)dy0);
  job->out_width = x1 - x0;
  job->out_height = y1 - y0;
  job->output = malloc((size_t)job->out_width * job->out_height * 3);
  row = malloc((size_t)cinfo.output_width * 3);
  if (!job->output || !row) {
    snprintf(job->error, sizeof job->error, "out of memory");
    free(row);
    free(job->output);
    job->output = NULL;
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  size_t skip_bytes = (size_t)(x0 - (int)crop_x) * 3;
  size_t row_bytes = (size_t)job->out_width * 3;
  for (int line = dy0; line < y1; line++) {
    JSAMPROW rows[1] = {row};
    jpeg_read_scanlines(&cinfo, rows, 1);
    if (line >= y0) memcpy(job->output + (size_t)(line - y0) * row_bytes, row + skip_bytes, row_bytes);
  }
  free(row);
  /* The rows below the part are never decoded. */
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
}

static void free_output(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void complete(napi_env env, napi_status status, void *data) {
  decode_job *job = (decode_job *)data;
  if (status != napi_ok || job->output == NULL) {
    napi_value message, error;
    napi_create_string_utf8(env, job->error[0] ? job->error : "JPEG decode failed", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else {
    napi_value result, buffer, width, height;
    napi_create_external_buffer(env, (size_t)job->out_width * job->out_height * 3, job->output, free_output, NULL, &buffer);
    napi_create_int32(env, job->out_width, &width);
    napi_create_int32(env, job->out_height, &height);
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "data", buffer);
    napi_set_named_property(env, result, "width", width);
    napi_set_named_property(env, result, "height", height);
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_reference(env, job->input_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value decode_region(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value args[6];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  bool is_buffer = false;
  if (argc < 5 || napi_is_buffer(env, args[0], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "decodeRegion(jpeg: Buffer, x, y, width, height)");
    return NULL;
  }
  decode_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  void *input;
  napi_get_buffer_info(env, args[0], &input, &job->input_length);
  job->input = input;
  napi_get_value_int32(env, args[1], &job->x);
  napi_get_value_int32(env, args[2], &job->y);
  napi_get_value_int32(env, args[3], &job->width);
  napi_get_value_int32(env, args[4], &job->height);
  job->scale_denom = 1;
  if (argc >= 6) napi_get_value_int32(env, args[5], &job->scale_denom);
  if (job->scale_denom != 2 && job->scale_denom != 4 && job->scale_denom != 8) job->scale_denom = 1;
  napi_create_reference(env, args[0], 1, &job->input_ref);
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "tessera.jpegRegion", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, decode, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

/*
 * normalizeTile(rgb: Uint8Array, out: Float32Array, scale: Float32Array(3), offset: Float32Array(3), bgr: boolean)
 * Writes planar float32 CHW: out[c][i] = rgb[i][source c] * scale[c] + offset[c]. The same loop
 * in JavaScript costs about 0.5 ms per 224 px tile, a tenth of a CPU model's inference time;
 * compiled, it vectorizes. Synchronous: it runs on the preprocessing worker threads.
 */
static napi_value normalize_tile(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  napi_typedarray_type type;
  size_t rgb_length, out_length, scale_length, offset_length;
  void *rgb, *out, *scale, *offset;
  if (argc < 5 || napi_get_typedarray_info(env, args[0], &type, &rgb_length, &rgb, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      napi_get_typedarray_info(env, args[1], &type, &out_length, &out, NULL, NULL) != napi_ok || type != napi_float32_array ||
      napi_get_typedarray_info(env, args[2], &type, &scale_length, &scale, NULL, NULL) != napi_ok || type != napi_float32_array || scale_length != 3 ||
      napi_get_typedarray_info(env, args[3], &type, &offset_length, &offset, NULL, NULL) != napi_ok || type != napi_float32_array || offset_length != 3 ||
      rgb_length % 3 != 0 || out_length != rgb_length) {
    napi_throw_type_error(env, NULL, "normalizeTile(rgb: Uint8Array, out: Float32Array of the same length, scale: Float32Array(3), offset: Float32Array(3), bgr: boolean)");
    return NULL;
  }
  bool bgr = false;
  napi_get_value_bool(env, args[4], &bgr);
  const unsigned char *pixels = rgb;
  float *planes = out;
  const float *s = scale, *o = offset;
  size_t count = rgb_length / 3;
  for (int c = 0; c < 3; c++) {
    int source = bgr ? 2 - c : c;
    float *plane = planes + (size_t)c * count;
    const float sc = s[c], of = o[c];
    for (size_t i = 0; i < count; i++) plane[i] = (float)pixels[i * 3 + source] * sc + of;
  }
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  napi_create_function(env, "decodeRegion", NAPI_AUTO_LENGTH, decode_region, NULL, &fn);
  napi_set_named_property(env, exports, "decodeRegion", fn);
  napi_create_function(env, "normalizeTile", NAPI_AUTO_LENGTH, normalize_tile, NULL, &fn);
  napi_set_named_property(env, exports, "normalizeTile", fn);
  return exports;
}
