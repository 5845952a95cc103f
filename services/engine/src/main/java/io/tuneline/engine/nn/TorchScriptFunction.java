package io.tuneline.engine.nn;

import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import ai.djl.pytorch.jni.JniUtils;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * A libtorch operator that DJL's JNI does not expose, called through TorchScript: the method's
 * source is compiled by libtorch when the module loads, and a call is one native call however many
 * tensors it takes. This is how the engine reaches kernels such as {@code torch._fused_adamw_} (one
 * vectorised pass per tensor where DJL's operations make a dozen) without a native library of its
 * own.
 *
 * <p>The module is a TorchScript archive written here rather than a file {@code torch.jit.save}
 * produced: it has no weights, only code, so the archive is four small records (the code, the
 * pickled module object, its constants and the format version, laid out as {@code torch.jit.save}
 * lays them out) and the source stays readable next to the Java that calls it. No Python is needed
 * to build or run it.
 */
public final class TorchScriptFunction implements AutoCloseable {
    /**
     * TorchScript's serialization format version (the one PyTorch 1.13 writes; libtorch reads it).
     */
    private static final String FORMAT_VERSION = "3";

    private final PtSymbolBlock module;

    private TorchScriptFunction(PtSymbolBlock module) {
        this.module = module;
    }

    /**
     * Compiles {@code methods}, the body of a TorchScript module class (each {@code def} takes
     * {@code self} first, indented by two spaces as {@code torch.jit.save} writes them), into a
     * module of class {@code className} on {@code manager}'s device.
     */
    public static TorchScriptFunction compile(
            PtNDManager manager, String className, String methods) {
        String code =
                "class "
                        + className
                        + "(Module):\n"
                        + "  __parameters__ = []\n"
                        + "  __buffers__ = []\n"
                        + "  training : bool\n"
                        + methods;
        try {
            byte[] archive = archive(className, code);
            return new TorchScriptFunction(
                    JniUtils.loadModule(manager, new ByteArrayInputStream(archive), true, false));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot build the TorchScript module " + className, e);
        }
    }

    /** Runs method {@code name}; the caller closes the arguments and the result. */
    public IValue call(String name, IValue... args) {
        return IValueUtils.runMethod(module, name, args);
    }

    @Override
    public void close() {
        module.close();
    }

    private static byte[] archive(String className, String code) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(bytes)) {
            stored(zip, "m/data.pkl", moduleObject(className));
            stored(zip, "m/code/__torch__.py", code.getBytes(StandardCharsets.UTF_8));
            // An empty tuple: the code has no tensor constants.
            stored(zip, "m/constants.pkl", new byte[] {(byte) 0x80, 2, ')', '.'});
            stored(zip, "m/version", FORMAT_VERSION.getBytes(StandardCharsets.US_ASCII));
        }
        return bytes.toByteArray();
    }

    /**
     * The pickle (protocol 2) of an instance of {@code __torch__.<className>} whose one attribute
     * is {@code training = True}: {@code GLOBAL}, an empty argument tuple, {@code NEWOBJ}, then
     * {@code BUILD} with the attribute dictionary, as PyTorch's pickler writes a module.
     */
    private static byte[] moduleObject(String className) {
        byte[] global = ("__torch__\n" + className + "\n").getBytes(StandardCharsets.US_ASCII);
        byte[] key = "training".getBytes(StandardCharsets.US_ASCII);
        ByteBuffer b =
                ByteBuffer.allocate(16 + global.length + key.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put((byte) 0x80).put((byte) 2); // PROTO 2
        b.put((byte) 'c').put(global); // GLOBAL
        b.put((byte) ')').put((byte) 0x81); // EMPTY_TUPLE, NEWOBJ
        b.put((byte) '}').put((byte) '('); // EMPTY_DICT, MARK
        b.put((byte) 'X').putInt(key.length).put(key); // BINUNICODE "training"
        b.put((byte) 0x88); // NEWTRUE
        b.put((byte) 'u').put((byte) 'b').put((byte) '.'); // SETITEMS, BUILD, STOP
        byte[] out = new byte[b.position()];
        b.flip().get(out);
        return out;
    }

    private static void stored(ZipOutputStream zip, String name, byte[] data) throws IOException {
        ZipEntry e = new ZipEntry(name);
        e.setMethod(ZipEntry.STORED);
        e.setSize(data.length);
        CRC32 crc = new CRC32();
        crc.update(data);
        e.setCrc(crc.getValue());
        zip.putNextEntry(e);
        zip.write(data);
        zip.closeEntry();
    }
}
