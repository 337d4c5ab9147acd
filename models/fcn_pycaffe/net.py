"""The net, written as FCN's net.py files are: NetSpec, a Python data layer,
and the score map cropped to the input with caffe.coord_map.crop."""
import caffe
from caffe import layers as L
from caffe import params as P
from caffe.coord_map import crop


def conv_relu(bottom, nout, ks=3, stride=1, pad=1):
    conv = L.Convolution(bottom, kernel_size=ks, stride=stride, num_output=nout, pad=pad,
                         weight_filler=dict(type='msra'),
                         param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    return conv, L.ReLU(conv, in_place=True)


def max_pool(bottom, ks=2, stride=2):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=ks, stride=stride)


def fcn(split, batch=8, seed=1):
    n = caffe.NetSpec()
    n.data, n.label = L.Python(module='layers', layer='ShapesDataLayer', ntop=2,
                               param_str=str(dict(batch=batch, size=32, seed=seed,
                                                  split=split)))
    n.conv1_1, n.relu1_1 = conv_relu(n.data, 16, pad=20)
    n.conv1_2, n.relu1_2 = conv_relu(n.relu1_1, 16)
    n.pool1 = max_pool(n.relu1_2)
    n.conv2_1, n.relu2_1 = conv_relu(n.pool1, 32)
    n.conv2_2, n.relu2_2 = conv_relu(n.relu2_1, 32)
    n.pool2 = max_pool(n.relu2_2)
    n.fc3, n.relu3 = conv_relu(n.pool2, 64, ks=3, pad=0)
    n.score_fr = L.Convolution(n.relu3, num_output=3, kernel_size=1, pad=0,
                               weight_filler=dict(type='msra'),
                               param=[dict(lr_mult=1, decay_mult=1),
                                      dict(lr_mult=2, decay_mult=0)])
    n.upscore = L.Deconvolution(n.score_fr, convolution_param=dict(
        num_output=3, kernel_size=8, stride=4, bias_term=False, group=3),
        param=[dict(lr_mult=0)])
    n.score = crop(n.upscore, n.data)
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(normalize=True))
    return n.to_proto()


def make_net():
    with open('train.prototxt', 'w') as f:
        f.write(str(fcn('train', seed=1)))
    with open('val.prototxt', 'w') as f:
        f.write(str(fcn('val', batch=20, seed=2)))


if __name__ == '__main__':
    make_net()
