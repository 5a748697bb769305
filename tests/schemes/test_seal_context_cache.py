"""SEALContexts are shared between contexts with identical parameters, never across parameters."""
import numpy as np

import he_ml


def test_loaded_contexts_share_the_seal_context_and_still_work():
    ctx = he_ml.CKKS(preset=None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 20, 40], scale_bits=20)
    blob = ctx.to_bytes()
    a, b = he_ml.load_context(blob), he_ml.load_context(blob)
    assert a._seal is b._seal is ctx._seal
    x = np.linspace(-1, 1, 50)
    # both loaded public contexts encrypt under the key holder's key, which decrypts them
    for pub in (a, b):
        assert np.max(np.abs(ctx.decrypt(pub.encrypt(x)) - x)) < 64 * 4096 / (6 * 2 ** 20)


def test_different_parameters_get_different_seal_contexts():
    c1 = he_ml.CKKS(preset=None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 20, 40], scale_bits=20)
    c2 = he_ml.CKKS(preset=None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 21, 40], scale_bits=21)
    b1 = he_ml.BFV(preset=None, poly_modulus_degree=4096, plain_modulus_bits=20, coeff_mod_bit_sizes=[36, 36, 37])
    assert c1._seal is not c2._seal
    assert b1._seal is not c1._seal
