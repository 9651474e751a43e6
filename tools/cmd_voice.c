/* cmd_voice.c — `cosy voice import|info`: build voice files from prompt data (npy arrays, e.g. a
 * fixture set's inputs) or from a model's built-in speakers (spk2info.pt), and inspect them. */
#include "cli.h"
#include "core/error.h"
#include "core/file.h"
#include "io/npy.h"
#include "model/model.h"
#include "model/voice/voice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_usage voice_usage = {
    .cmd = "voice",
    .synopsis = "import -m MODEL.gguf --wav PROMPT.wav (--text \"transcript\" | --text-file F) -o VOICE.voice [--name NAME]\n"
                "import -m MODEL.gguf -o VOICE.voice (--speaker NAME | --fixture DIR | --embedding F.npy ...)\n"
                "info VOICE.voice",
    .description = "import   build a voice file from a recording, a built-in speaker or prompt arrays\n"
                   "info     print what a voice file holds\n"
                   "`cosy voice <action> --help` describes an action's options.\n",
};

static const cli_usage import_usage = {
    .cmd = "voice import",
    .synopsis = "-m MODEL.gguf --wav PROMPT.wav (--text \"transcript\" | --text-file F) -o VOICE.voice [--name NAME]\n"
                "-m MODEL.gguf -o VOICE.voice [--name NAME]\n"
                " (--speaker NAME | --fixture DIR | [--prompt-text F.npy] [--llm-prompt-tokens F.npy]\n"
                "  [--flow-prompt-tokens F.npy] [--prompt-feat F.npy] --embedding F.npy)",
    .description = "From your own recording: --wav takes 3 to 30 s of one speaker (WAV, FLAC or Ogg, 16 kHz or more, any\n"
                   "channels) and --text (or --text-file) exactly what is said in it; the voice is named after the file\n"
                   "unless --name. MODEL must have been converted from a model directory with campplus.onnx and\n"
                   "speech_tokenizer_v2.onnx (every CosyVoice2 release has both). Then: cosy synth -m MODEL --voice VOICE.voice\n\n"
                   "A voice holds the prompt text tokens, the prompt speech tokens (for the LM and for the flow), the\n"
                   "prompt mel [frames, 80] and the speaker embedding [192] of one speaker, checked against MODEL.\n",
};

static const cli_usage info_usage = {
    .cmd = "voice info",
    .synopsis = "VOICE.voice",
    .description = "Prints the voice's name, transcript and the sizes of its prompt data.\n",
};

static cosy_status load_ints(const char *path, int32_t **out, int *n)
{
    npy_array a;
    COSY_TRY(npy_load(path, &a));
    cosy_status st = COSY_OK;
    if (a.is_float) st = cosy_error(COSY_ERR_INVALID_ARG, "%s: token ids must be integers", path);
    else if (a.numel > 100000) st = cosy_error(COSY_ERR_INVALID_ARG, "%s: %lld tokens is too many", path, (long long)a.numel);
    else if (!(*out = malloc(sizeof(int32_t) * (size_t)(a.numel ? a.numel : 1)))) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    else {
        for (int64_t i = 0; i < a.numel; i++) {
            if (a.i64[i] < 0 || a.i64[i] > 0x7fffffff) {
                st = cosy_error(COSY_ERR_INVALID_ARG, "%s: id %lld at %lld is out of range", path, (long long)a.i64[i], (long long)i);
                break;
            }
            (*out)[i] = (int32_t)a.i64[i];
        }
        *n = (int)a.numel;
    }
    npy_free(&a);
    return st;
}

static cosy_status load_floats(const char *path, float **out, int64_t *numel, int64_t *last_dim)
{
    npy_array a;
    COSY_TRY(npy_load(path, &a));
    *out = a.f32;
    a.f32 = NULL;
    *numel = a.numel;
    if (last_dim) *last_dim = a.ndim ? a.shape[a.ndim - 1] : 1;
    npy_free(&a);
    return COSY_OK;
}

static int cmd_import(int argc, char **argv)
{
    const char *model_path = NULL, *out = NULL, *name = NULL, *speaker = NULL, *fixture = NULL;
    const char *f_text = NULL, *f_llm = NULL, *f_flow = NULL, *f_feat = NULL, *f_emb = NULL;
    const char *wav = NULL, *transcript = NULL, *transcript_file = NULL;
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&model_path),
        CLI_OPTION_OUTPUT(&out, "VOICE.voice", "the voice file to write"),
        {.name = "--wav", .kind = CLI_OPT_STRING, .dest = &wav, .hint = "F",
         .help = "the recording: 3 to 30 s of one speaker, WAV, FLAC or Ogg, 16 kHz or more"},
        {.name = "--text", .kind = CLI_OPT_STRING, .dest = &transcript, .hint = "T", .help = "what is said in --wav, exactly"},
        {.name = "--text-file", .kind = CLI_OPT_STRING, .dest = &transcript_file, .hint = "F",
         .help = "the transcript of --wav, from a file"},
        {.name = "--name", .kind = CLI_OPT_STRING, .dest = &name, .hint = "NAME",
         .help = "the voice's name", .default_text = "the --wav file's name, the speaker's, or \"voice\""},
        CLI_OPTION_SPEAKER(&speaker),
        {.name = "--fixture", .kind = CLI_OPT_STRING, .dest = &fixture, .hint = "DIR",
         .help = "a fixture set's golden/ inputs (lm_prompt_text, lm_prompt_speech_token, prompt_speech_token,\n"
                 "prompt_feat, embedding .npy); an array option below replaces the fixture's"},
        {.name = "--prompt-text", .kind = CLI_OPT_STRING, .dest = &f_text, .hint = "F.npy", .help = "the prompt text's token ids"},
        {.name = "--llm-prompt-tokens", .kind = CLI_OPT_STRING, .dest = &f_llm, .hint = "F.npy", .help = "the LM's prompt speech tokens"},
        {.name = "--flow-prompt-tokens", .kind = CLI_OPT_STRING, .dest = &f_flow, .hint = "F.npy", .help = "the flow's prompt speech tokens"},
        {.name = "--prompt-feat", .kind = CLI_OPT_STRING, .dest = &f_feat, .hint = "F.npy", .help = "the prompt mel [frames, 80]"},
        {.name = "--embedding", .kind = CLI_OPT_STRING, .dest = &f_emb, .hint = "F.npy", .help = "the speaker embedding [192]"},
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&import_usage, opts, argc, argv, NULL);
    if (rc != CLI_GO_ON) return rc;
    if (!model_path || !out) return cli_usage_error("voice import", "import needs -m MODEL.gguf and -o VOICE.voice");
    if ((speaker != NULL) + (fixture != NULL) + (f_emb != NULL) + (wav != NULL) != 1)
        return cli_usage_error("voice import", "give exactly one of --wav (with --text), --speaker, --fixture or --embedding (with the other arrays)");
    if ((transcript || transcript_file) && !wav) return cli_usage_error("voice import", "--text and --text-file go with --wav");
    if (wav && !transcript == !transcript_file)
        return cli_usage_error("voice import", "--wav needs the transcript of the recording: --text \"what is said\" or --text-file F");
    char *text_buf = NULL;
    if (transcript_file) {
        cosy_status rs = cosy_file_read_all(transcript_file, &text_buf, NULL);
        if (rs != COSY_OK) return cli_fail("voice", rs);
        transcript = text_buf;
    }
    cosy_model_params mp = cosy_model_default_params();
    if (!wav) mp.n_threads = 1; /* a voice from audio runs the tokenizer and CAM++: all cores */
    cosy_model *m;
    cosy_status st = cosy_model_load(model_path, &mp, &m);
    cosy_voice *v = NULL;
    char paths[5][1024];
    if (fixture) {
        const char *names[5] = {"lm_prompt_text", "lm_prompt_speech_token", "prompt_speech_token", "prompt_feat", "embedding"};
        for (int k = 0; k < 5; k++) snprintf(paths[k], sizeof paths[k], "%s/%s.npy", fixture, names[k]);
        /* an array named on the command line replaces the fixture's (it was silently ignored before) */
        if (!f_text) f_text = paths[0];
        if (!f_llm) f_llm = paths[1];
        if (!f_flow) f_flow = paths[2];
        if (!f_feat) f_feat = paths[3];
        f_emb = paths[4];
    }
    if (st != COSY_OK) free(text_buf);
    if (st != COSY_OK) return cli_fail("voice", st);
    if (wav) {
        st = cosy_voice_from_audio_file(m, wav, transcript, &v);
    } else if (speaker) {
        st = cosy_voice_from_speaker(m, speaker, &v);
    } else {
        v = cosy_voice_alloc(name ? name : "voice");
        st = v ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "out of memory");
        int64_t numel, last;
        if (st == COSY_OK && f_text) st = load_ints(f_text, &v->prompt_text, &v->n_prompt_text);
        if (st == COSY_OK && f_llm) st = load_ints(f_llm, &v->llm_prompt_tokens, &v->n_llm_prompt_tokens);
        if (st == COSY_OK && f_flow) st = load_ints(f_flow, &v->flow_prompt_tokens, &v->n_flow_prompt_tokens);
        if (st == COSY_OK && f_feat && (st = load_floats(f_feat, &v->prompt_feat, &numel, &last)) == COSY_OK) {
            v->n_mels = (int)last;
            v->n_prompt_frames = last ? (int)(numel / last) : 0;
        }
        if (st == COSY_OK && (st = load_floats(f_emb, &v->flow_embedding, &numel, NULL)) == COSY_OK) {
            v->embed_dim = v->n_llm_embedding = (int)numel;
            v->llm_embedding = malloc(sizeof(float) * (size_t)numel);
            if (!v->llm_embedding) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
            else memcpy(v->llm_embedding, v->flow_embedding, sizeof(float) * (size_t)numel);
        }
    }
    if (st == COSY_OK && name) {
        free(v->name);
        v->name = strdup(name);
    }
    if (st == COSY_OK) st = cosy_voice_validate(v, m);
    if (st == COSY_OK) st = cosy_voice_save(v, out);
    cosy_voice_free(v);
    cosy_model_free(m);
    free(text_buf);
    if (st != COSY_OK) return cli_fail("voice", st);
    fprintf(stderr, "cosy voice: wrote %s\n", out);
    return 0;
}

static int cmd_info_voice(int argc, char **argv)
{
    const char *path = NULL;
    static const cli_option opts[] = {CLI_OPTION_END};
    int rc = cli_parse_options(&info_usage, opts, argc, argv, &path);
    if (rc != CLI_GO_ON) return rc;
    if (!path) return cli_usage_error("voice info", "needs one voice file");
    cosy_voice *v;
    cosy_status st = cosy_voice_load(path, &v);
    if (st != COSY_OK) return cli_fail("voice", st);
    printf("voice: %s\n  name                 %s\n", path, v->name);
    if (v->transcript) printf("  transcript           %s\n", v->transcript);
    printf("  prompt text tokens   %d\n  LM prompt tokens     %d\n  flow prompt tokens   %d\n  prompt mel           %d x %d\n"
           "  speaker embedding    %d\n",
           v->n_prompt_text, v->n_llm_prompt_tokens, v->n_flow_prompt_tokens, v->n_prompt_frames, v->n_mels, v->embed_dim);
    cosy_voice_free(v);
    return 0;
}

int cmd_voice(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        cli_print_usage(stdout, &voice_usage, NULL);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "import")) return cmd_import(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return cmd_info_voice(argc - 1, argv + 1);
    return cli_usage_error("voice", "unknown action '%s' (import, info)", argv[1]);
}
