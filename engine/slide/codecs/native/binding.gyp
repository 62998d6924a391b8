{
  "targets": [
    {
      "target_name": "jpeg_region",
      "sources": ["jpeg_region.c"],
      "libraries": ["-ljpeg"],
      "cflags": ["-O3", "-Wall"]
    }
  ]
}
