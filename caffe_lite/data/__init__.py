"""What the data layers, the data tools and caffe.io share: the
DataTransformer (transform_param), record databases (LMDB, LevelDB), Datum
records, and image decoding."""
